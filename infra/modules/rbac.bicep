// Azure RBAC (control-plane-defined, data-plane) role assignments, least privilege.
// Cosmos DB's data-plane role is a sqlRoleAssignment in cosmos.bicep (no Azure RBAC role reads items).
param lakeName string
param lakeContainerName string
param hostStorageName string
param eventHubsNamespaceName string
param eventHubName string
param appInsightsName string
param funcPrincipalId string
param agentPrincipalId string
param posPrincipalId string

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
  eventHubsDataSender: '2b629674-e913-4c01-ae53-ef4638d8f975'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource lake 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: lakeName
  resource blob 'blobServices' existing = {
    name: 'default'
    resource container 'containers' existing = {
      name: lakeContainerName
    }
  }
}
resource host 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}
resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubsNamespaceName
  resource hub 'eventhubs' existing = {
    name: eventHubName
  }
}
resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// --- Function App identity ---
// Lake: Blob Data Contributor, not Owner: the app reads, writes, lists and deletes blobs through the Blob
// API only; Owner would add POSIX ACL and ownership management on the ADLS Gen2 account, which it never does.
resource funcLakeBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(lake.id, funcPrincipalId, roles.storageBlobDataContributor)
  scope: lake
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
  }
}
// Lake queues: the blob trigger's identity-based connection writes poison messages (webjobs-blobtrigger-poison).
resource funcLakeQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(lake.id, funcPrincipalId, roles.storageQueueDataContributor)
  scope: lake
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
  }
}
// Host storage: Blob Data Owner, as Flex Consumption requires for AzureWebJobsStorage and the package container.
resource funcHostBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(host.id, funcPrincipalId, roles.storageBlobDataOwner)
  scope: host
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
  }
}
// Event Hubs, scoped to the hub: receive (apply_sales trigger) and send (POST /api/sales ingress).
resource funcHubReceive 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace::hub.id, funcPrincipalId, roles.eventHubsDataReceiver)
  scope: namespace::hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataReceiver)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
  }
}
resource funcHubSend 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace::hub.id, funcPrincipalId, roles.eventHubsDataSender)
  scope: namespace::hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataSender)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
  }
}
// Application Insights with local auth disabled: telemetry is sent with the identity.
resource funcMetrics 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, funcPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// --- Store agents: Blob Data Contributor on the `lake` container only, with an ABAC condition: every
// blob read, write, create, delete or rename must be under raw/ (so agents cannot read or change the curated
// data, manifests or quarantine, and cannot list the container). ---
var rawOnlyCondition = '((!(ActionMatches{\'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read\'}) AND !(ActionMatches{\'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write\'}) AND !(ActionMatches{\'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action\'}) AND !(ActionMatches{\'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete\'}) AND !(ActionMatches{\'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action\'})) OR (@Resource[Microsoft.Storage/storageAccounts/blobServices/containers/blobs:path] StringStartsWith \'raw/\'))'

resource agentRaw 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(lake::blob::container.id, agentPrincipalId, roles.storageBlobDataContributor)
  scope: lake::blob::container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: agentPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Store agents: upload dumps under raw/ only (ABAC condition on the blob path).'
    conditionVersion: '2.0'
    condition: rawOnlyCondition
  }
}

// --- POS producers: send only, to the sales hub only. ---
resource posSend 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace::hub.id, posPrincipalId, roles.eventHubsDataSender)
  scope: namespace::hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataSender)
    principalId: posPrincipalId
    principalType: 'ServicePrincipal'
  }
}
