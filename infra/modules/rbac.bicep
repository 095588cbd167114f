// Azure RBAC (control-plane-defined, data-plane) role assignments, least privilege.
// Cosmos DB's data-plane role is a sqlRoleAssignment in cosmos.bicep (no Azure RBAC role reads items).
// Role ids and the ABAC condition syntax are checked against the docs: see infra/README.md,
// "Verified against the docs / still unverified".
param lakeName string
param lakeContainerName string
param hostStorageName string
param eventHubsNamespaceName string
param eventHubName string
param appInsightsName string
param funcPrincipalId string
param posPrincipalId string

// Built-in role definition ids, as listed in https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
// (storage: .../built-in-roles/storage, Event Hubs: .../built-in-roles/analytics, monitoring: .../built-in-roles/monitor).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
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
// Host storage (AzureWebJobsStorage, identity-based). Per "Connecting to host storage with an identity"
// (https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity):
// - Blob Data Owner: the host's coordination blobs, key store, timer locks, Event Hubs checkpoints, and the Flex
//   Consumption deployment package container;
// - Queue Data Contributor: the blob trigger's internal queues, which always live on AzureWebJobsStorage whatever
//   the trigger's own connection (the docs list it for "Azure Blobs (trigger only)");
// - Table Data Contributor: the host's diagnostic events (without it the host logs warnings instead of the event
//   that explains a failed start).
// Not granted: Storage Account Contributor, which the same docs row also lists for the blob trigger; see README.
resource funcHostBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(host.id, funcPrincipalId, roles.storageBlobDataOwner)
  scope: host
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
  }
}
resource funcHostQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(host.id, funcPrincipalId, roles.storageQueueDataContributor)
  scope: host
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
  }
}
resource funcHostTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(host.id, funcPrincipalId, roles.storageTableDataContributor)
  scope: host
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
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

// --- Store agents: a custom role, assigned on the `lake` container once per store (not here: by
// infra/scripts/store_access.py, which creates each store's identity) with an ABAC condition on the blob path
// raw/store=<id>/, so that one store cannot write another store's dumps (docs/security.md).
// Why not Storage Blob Data Contributor with a condition: that role also carries the control-plane actions
// containers/write and containers/delete, and Blob Storage conditions can only target the blob DataActions
// (https://learn.microsoft.com/azure/storage/blobs/storage-auth-abac-attributes), so an agent could have deleted
// the whole `lake` container. And blobs/move/action (rename) exposes only the *source* path to a condition, so
// "move only under raw/store=<id>/" would still let an agent rename its own blob into another store's folder.
resource agentRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'inventory-store-agent-raw-upload')
  // The agent only needs what BlobLake.put_file does with overwrite=False: Get Blob Properties (head, blobs/read),
  // Put Blob / Put Block / Put Block List, and Get Container Properties when container creation is refused. The
  // condition must target every blob DataAction of this role: adding one (e.g. runAsSuperUser, delete) without
  // changing the condition in store_access.py would grant it on the whole container.
  properties: {
    // Custom role names are unique per tenant: the resource group id keeps one per deployment.
    roleName: 'Inventory store agent raw upload ${uniqueString(resourceGroup().id)}'
    description: 'Read container properties; read, create and write blobs. Assigned on the lake container once per store, with a condition limiting blob access to raw/store=<id>/ (infra/scripts/store_access.py).'
    type: 'customRole'
    permissions: [
      {
        actions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/read'
        ]
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [ resourceGroup().id ]
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

// What store_access.py assigns, and where (azd env: AGENT_ROLE_DEFINITION_ID, LAKE_CONTAINER_RESOURCE_ID).
// Subscription-level id form, as for the built-in roles.
output agentRoleDefinitionId string = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', agentRole.name)
output lakeContainerId string = lake::blob::container.id
