// Inventory pipeline: every Azure resource, identity-only access, alert rules wired to an action group.
// Deploy with `azd up` (azure.yaml at the repo root); see infra/README.md.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('azd environment name; with the resource group id it makes the unique resource suffix.')
param environmentName string

@minLength(1)
param location string = resourceGroup().location

@minValue(1)
@maxValue(32)
@description('Partitions of the sales event hub (cannot change after creation on Standard).')
param eventHubPartitionCount int = 4

@description('0: Cosmos DB serverless (default). >0: provisioned account with container autoscale up to this many RU/s.')
param cosmosAutoscaleMaxThroughput int = 0

@description('Comma-separated email addresses the on-call action group pages (empty: none).')
param alertEmails string = ''

@secure()
@description('Webhook URL of the on-call tool (common alert schema). Empty: no webhook receiver.')
param alertWebhookUrl string = ''

var resourceToken = toLower(uniqueString(resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName, workload: 'inventory-pipeline' }
var deploymentContainerName = 'app-package-${resourceToken}'

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: { location: location, tags: tags, resourceToken: resourceToken }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    lakeContainerName: 'lake'
    deploymentContainerName: deploymentContainerName
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: { location: location, tags: tags, resourceToken: resourceToken }
}

module eventHubs 'modules/eventhubs.bicep' = {
  name: 'eventhubs'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    eventHubName: 'sales'
    consumerGroupName: 'apply-sales'
    partitionCount: eventHubPartitionCount
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    databaseName: 'inventory'
    containerName: 'stock'
    autoscaleMaxThroughput: cosmosAutoscaleMaxThroughput
    dataContributorPrincipalId: identity.outputs.funcPrincipalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    identityId: identity.outputs.funcId
    identityClientId: identity.outputs.funcClientId
    hostStorageName: storage.outputs.hostName
    hostBlobEndpoint: storage.outputs.hostBlobEndpoint
    deploymentContainerName: deploymentContainerName
    lakeBlobEndpoint: storage.outputs.lakeBlobEndpoint
    lakeQueueEndpoint: storage.outputs.lakeQueueEndpoint
    lakeContainerName: storage.outputs.lakeContainerName
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabaseName: cosmos.outputs.databaseName
    cosmosContainerName: cosmos.outputs.containerName
    eventHubsFullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
    eventHubName: eventHubs.outputs.hubName
    eventHubConsumerGroup: eventHubs.outputs.consumerGroupName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    lakeName: storage.outputs.lakeName
    lakeContainerName: storage.outputs.lakeContainerName
    hostStorageName: storage.outputs.hostName
    eventHubsNamespaceName: eventHubs.outputs.namespaceName
    eventHubName: eventHubs.outputs.hubName
    appInsightsName: monitoring.outputs.appInsightsName
    funcPrincipalId: identity.outputs.funcPrincipalId
    posPrincipalId: identity.outputs.posPrincipalId
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    lakeId: storage.outputs.lakeId
    hostStorageName: storage.outputs.hostName
    actionGroupId: alerts.outputs.actionGroupId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    appInsightsId: monitoring.outputs.appInsightsId
    alertEmails: empty(alertEmails) ? [] : split(replace(alertEmails, ' ', ''), ',')
    alertWebhookUrl: alertWebhookUrl
  }
}

// --- what azd, the store agents and the POS producers need (no secrets) ---
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_HOSTNAME string = functionApp.outputs.hostName
output SALES_ENDPOINT string = 'https://${functionApp.outputs.hostName}/api/sales'
output LAKE_BLOB_ENDPOINT string = storage.outputs.lakeBlobEndpoint
output LAKE_CONTAINER string = storage.outputs.lakeContainerName
output EVENTS_FULLY_QUALIFIED_NAMESPACE string = eventHubs.outputs.fullyQualifiedNamespace
output EVENTHUB_NAME string = eventHubs.outputs.hubName
output FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.funcClientId
// Store agents: one identity per store, made by infra/scripts/store_access.py with these (docs/security.md).
output AGENT_ROLE_DEFINITION_ID string = rbac.outputs.agentRoleDefinitionId
output LAKE_CONTAINER_RESOURCE_ID string = rbac.outputs.lakeContainerId
output POS_IDENTITY_CLIENT_ID string = identity.outputs.posClientId
// --- what the postdeploy hook (infra/scripts/subscribe-blob-events.*) needs for the Event Grid subscription ---
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output LAKE_ACCOUNT_ID string = storage.outputs.lakeId
output EVENT_GRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.topicName
output EVENT_GRID_DEADLETTER_CONTAINER_ID string = eventGrid.outputs.deadLetterContainerId
