// The Function App on the Flex Consumption plan (FC1), Python 3.11, with a user-assigned managed identity.
// App settings: every setting of shared/settings.py except the local-only ones listed in
// infra/settings-local-only.txt (tests/unit/test_infra.py keeps this list and the code in step), plus the
// host's identity-based AzureWebJobsStorage. Every connection is identity-based: no keys, no connection strings.
param location string
param tags object
param resourceToken string
param identityId string
param identityClientId string
param hostStorageName string
param hostBlobEndpoint string
param deploymentContainerName string
param lakeBlobEndpoint string
param lakeQueueEndpoint string
param lakeContainerName string
param cosmosEndpoint string
param cosmosDatabaseName string
param cosmosContainerName string
param eventHubsFullyQualifiedNamespace string
param eventHubName string
param eventHubConsumerGroup string
param appInsightsConnectionString string
@description('Flex Consumption instance memory (MB): 2048 or 4096. Dumps are decompressed and cleaned on the instance.')
@allowed([ 2048, 4096 ])
param instanceMemoryMB int = 2048
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40
@description('Zone-redundant Flex Consumption plan. Off by default: with it on, the platform keeps at least two always-ready instances per per-function scale group, billed while idle (https://learn.microsoft.com/azure/reliability/reliability-functions). Needs a region with availability zones for Flex Consumption.')
param zoneRedundant bool = false
@description('NCRONTAB schedule of compute_aggregates.')
param aggregatesSchedule string = '0 20 * * * *'
@description('NCRONTAB schedule of raise_alerts.')
param alertsSchedule string = '0 */15 * * * *'
@description('NCRONTAB schedule of the maintain_lake timer (compaction, vacuum, checkpoints of the Delta tables).')
param maintainSchedule string = '0 30 4 * * *'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy is a cost choice (parameter zoneRedundant, off by default): on Flex Consumption it adds billed always-ready instances.
  name: 'plan-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: {
    reserved: true // Linux; Flex Consumption is Linux only
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: Client certificates are not required: callers authenticate with function keys (AuthLevel.FUNCTION) over HTTPS only.
  // checkov:skip=CKV_AZURE_222: Public network access kept: store POS systems post sales to /api/sales over the internet (function key required).
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales out by itself (maximumInstanceCount); there is no minimum worker count to set.
  // checkov:skip=CKV_AZURE_213: No health-check path: there is no health endpoint, and Flex Consumption replaces unhealthy instances itself.
  // checkov:skip=CKV_AZURE_78: ftpsState is deprecated on Flex Consumption (no FTP); basic-auth FTP and SCM publishing are disabled by basicPublishingCredentialsPolicies.
  name: 'func-${resourceToken}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: { name: 'python', version: '3.11' }
    }
    siteConfig: {
      // No ftpsState: Flex Consumption lists properties.ftpsState as deprecated ("FTPS not supported"); FTP and
      // SCM basic-auth publishing are switched off by the basicPublishingCredentialsPolicies below.
      minTlsVersion: '1.2'
      http20Enabled: true
      // Flex Consumption takes the runtime from functionAppConfig: FUNCTIONS_WORKER_RUNTIME and
      // FUNCTIONS_EXTENSION_VERSION must not be app settings here.
      appSettings: [
        // --- host storage (AzureWebJobsStorage), identity-based ---
        { name: 'AzureWebJobsStorage__accountName', value: hostStorageName }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
        // --- shared/settings.py: writable scratch space (wwwroot is the read-only package mount) ---
        { name: 'INVENTORY_HOME', value: '/tmp/inventory' }
        // --- lake (blob trigger connection LAKE + BlobLake adapter) ---
        { name: 'LAKE__blobServiceUri', value: lakeBlobEndpoint }
        { name: 'LAKE__queueServiceUri', value: lakeQueueEndpoint }
        { name: 'LAKE__credential', value: 'managedidentity' }
        { name: 'LAKE__clientId', value: identityClientId }
        { name: 'LAKE_CONTAINER', value: lakeContainerName }
        { name: 'INGEST_MAX_DUMP_BYTES', value: '8589934592' }
        { name: 'INGEST_MAX_CELL_BYTES', value: '1048576' }
        { name: 'INGEST_MAX_ROWS_PER_TABLE', value: '100000000' }
        { name: 'INGEST_QUERY_TIMEOUT_S', value: '900' }
        { name: 'INGEST_BATCH_ROWS', value: '65536' }
        { name: 'INGEST_MEMORY_LIMIT', value: '128MB' }
        { name: 'INGEST_FULL_CHECK_DAYS', value: '7' }
        // --- stock store (Cosmos DB, managed identity) ---
        { name: 'COSMOS__accountEndpoint', value: cosmosEndpoint }
        { name: 'COSMOS__credential', value: 'managedidentity' }
        { name: 'COSMOS__clientId', value: identityClientId }
        { name: 'COSMOS_DATABASE', value: cosmosDatabaseName }
        { name: 'COSMOS_CONTAINER', value: cosmosContainerName }
        { name: 'STOCK_LEDGER_TTL_DAYS', value: '8' }
        // --- events (Event Hubs trigger connection EVENTS + producer) ---
        { name: 'EVENTS__fullyQualifiedNamespace', value: eventHubsFullyQualifiedNamespace }
        { name: 'EVENTS__credential', value: 'managedidentity' }
        { name: 'EVENTS__clientId', value: identityClientId }
        { name: 'EVENTHUB_NAME', value: eventHubName }
        { name: 'EVENTHUB_CONSUMER_GROUP', value: eventHubConsumerGroup }
        { name: 'SALES_HTTP_MAX_BYTES', value: '1048576' }
        // --- timers and alerts ---
        { name: 'AGGREGATES_SCHEDULE', value: aggregatesSchedule }
        { name: 'ALERTS_SCHEDULE', value: alertsSchedule }
        { name: 'MAINTAIN_SCHEDULE', value: maintainSchedule }
        { name: 'LAKE_VACUUM_RETENTION_HOURS', value: '168' }
        { name: 'ALERT_STALE_DUMP_HOURS', value: '26' }
        { name: 'ALERT_INGEST_GRACE_MINUTES', value: '60' }
        { name: 'ALERT_COOLDOWN_HOURS', value: '24' }
        // --- telemetry (Application Insights, Entra ID ingestion only) ---
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'Authorization=AAD;ClientId=${identityClientId}' }
        // The worker exports the `inventory` loggers itself and the host no longer copies them (OTel how-to):
        // every custom event and failure arrives once. See docs/operations.md.
        { name: 'PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY', value: 'true' }
        { name: 'PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME', value: 'inventory' }
      ]
    }
  }
}

// No FTP or SCM basic-auth publishing credentials: azd deploys with Entra ID to the package container.
resource ftp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: { allow: false }
}

resource scm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: { allow: false }
}

output name string = site.name
output id string = site.id
output hostName string = site.properties.defaultHostName
