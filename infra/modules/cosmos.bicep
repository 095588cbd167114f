// Cosmos DB for NoSQL: serverless by default (autoscale when cosmosAutoscaleMaxThroughput > 0), keys disabled
// (disableLocalAuth), database `inventory`, container `stock` (partition key /storeId, TTL on: per-item
// ttl for ledger entries, -1 = items without ttl never expire), and the function identity's data-plane role.
param location string
param tags object
param resourceToken string
param databaseName string = 'inventory'
param containerName string = 'stock'
@description('0: serverless account. >0: provisioned account, container autoscale up to this many RU/s (>= 1000).')
param autoscaleMaxThroughput int = 0
@description('Principal id that gets Cosmos DB Built-in Data Contributor (the Function App identity).')
param dataContributorPrincipalId string

var serverless = autoscaleMaxThroughput == 0

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  // checkov:skip=CKV_AZURE_99: Public endpoint kept (Flex Consumption without VNet); keys are disabled, so access needs an Entra ID token and a Cosmos data-plane role.
  // checkov:skip=CKV_AZURE_101: Public network access kept for the same reason as CKV_AZURE_99.
  name: 'cosmos-${resourceToken}'
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [ { locationName: location, failoverPriority: 0, isZoneRedundant: false } ]
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
    capabilities: serverless ? [ { name: 'EnableServerless' } ] : []
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
    backupPolicy: { type: 'Continuous', continuousModeProperties: { tier: 'Continuous7Days' } }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: { id: databaseName }
  }
}

resource stock 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: containerName
  properties: {
    resource: {
      id: containerName
      partitionKey: { paths: [ '/storeId' ], kind: 'Hash' }
      defaultTtl: -1
      // Same as shared/adapters/stock_cosmos.py INDEXING_POLICY: only the paths the queries filter on.
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          { path: '/storeId/?' }
          { path: '/type/?' }
          { path: '/sku/?' }
          { path: '/occurredAt/?' }
          { path: '/_ts/?' }
        ]
        excludedPaths: [ { path: '/*' } ]
      }
    }
    options: serverless ? {} : { autoscaleSettings: { maxThroughput: autoscaleMaxThroughput } }
  }
}

// Cosmos DB Built-in Data Contributor (data plane; no ARM role can read or write items).
resource dataContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: account
  name: guid(account.id, databaseName, dataContributorPrincipalId, '00000000-0000-0000-0000-000000000002')
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002'
    principalId: dataContributorPrincipalId
    scope: '${account.id}/dbs/${database.name}' // the inventory database only
  }
}

output accountId string = account.id
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
output containerName string = stock.name
