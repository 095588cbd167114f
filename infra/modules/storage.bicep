// Two storage accounts, both keyless (shared key off), TLS 1.2, no public blob access:
// - the lake: ADLS Gen2 (hierarchical namespace), container `lake`, lifecycle rules;
// - the Functions host account: AzureWebJobsStorage (leases, timer schedule monitor, Event Hubs
//   checkpoints, blob receipts) and the Flex Consumption deployment package container.
param location string
param tags object
param resourceToken string
param lakeContainerName string = 'lake'
param deploymentContainerName string
@description('Days after last modification before raw/ dumps move to the cool tier.')
param rawCoolAfterDays int = 30
@description('Days after last modification before deadletter/ and quarantine/ objects are deleted.')
param setAsideDeleteAfterDays int = 90


resource lake 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_59: Public endpoint kept: store agents upload over the internet with Entra ID; shared keys and anonymous access are off. Add private endpoints for a private network.
  // checkov:skip=CKV_AZURE_206: Replication is a cost choice: Standard_LRS by default; change the SKU to Standard_ZRS or Standard_GRS for production.
  name: 'stlake${resourceToken}'
  location: location
  // checkov:skip=CKV_AZURE_35: Default network action Allow: agents in stores upload from unknown addresses; access still needs an Entra ID token and an RBAC role.
  // checkov:skip=CKV_AZURE_43: The name is stlake + uniqueString(): lowercase alphanumeric, 19 characters; checkov cannot evaluate the interpolation.
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    isHnsEnabled: true
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource lakeBlob 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: lake
  name: 'default'
  properties: {
    // Blob soft delete protects against accidental deletes (supported with hierarchical namespace).
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource lakeContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: lakeBlob
  name: lakeContainerName
  properties: { publicAccess: 'None' }
}

resource lakeLifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: lake
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'raw-to-cool'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: [ 'blockBlob' ], prefixMatch: [ '${lakeContainerName}/raw/' ] }
            actions: { baseBlob: { tierToCool: { daysAfterModificationGreaterThan: rawCoolAfterDays } } }
          }
        }
        {
          name: 'setaside-delete'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [ 'blockBlob' ]
              prefixMatch: [ '${lakeContainerName}/deadletter/', '${lakeContainerName}/quarantine/' ]
            }
            actions: { baseBlob: { delete: { daysAfterModificationGreaterThan: setAsideDeleteAfterDays } } }
          }
        }
      ]
    }
  }
}

resource host 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_59: Flex Consumption without VNet integration reaches its host storage over the public endpoint; shared keys are off.
  // checkov:skip=CKV_AZURE_206: Host state (leases, checkpoints, package) is reproducible; LRS is enough.
  name: 'sthost${resourceToken}'
  location: location
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration has no fixed outbound addresses to allow; shared keys are off.
  // checkov:skip=CKV_AZURE_43: The name is sthost + uniqueString(): lowercase alphanumeric, 19 characters; checkov cannot evaluate the interpolation.
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource hostBlob 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: host
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: hostBlob
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

output lakeId string = lake.id
output lakeName string = lake.name
output lakeBlobEndpoint string = lake.properties.primaryEndpoints.blob
output lakeQueueEndpoint string = lake.properties.primaryEndpoints.queue
output lakeContainerName string = lakeContainer.name
output hostId string = host.id
output hostName string = host.name
output hostBlobEndpoint string = host.properties.primaryEndpoints.blob
