// Log Analytics workspace + workspace-based Application Insights with local (key) auth disabled:
// telemetry is accepted only with Entra ID (APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD;...).
param location string
param tags object
param resourceToken string
@description('Days Log Analytics keeps data (30 is included in the ingestion price).')
param retentionInDays int = 30
@description('Daily ingestion cap in GB (-1: none). A cap stops ingestion, and so alerting, for the rest of the day.')
param dailyQuotaGb int = -1

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: retentionInDays
    workspaceCapping: { dailyQuotaGb: dailyQuotaGb }
    features: { disableLocalAuth: true }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
  }
}

output workspaceId string = workspace.id
output appInsightsId string = appInsights.id
output appInsightsName string = appInsights.name
// The connection string is not a secret once local auth is disabled: it only names the resource and the
// ingestion endpoint; ingestion needs an Entra ID token with Monitoring Metrics Publisher.
output appInsightsConnectionString string = appInsights.properties.ConnectionString
