// Action group (email + webhook receivers) and one Azure Monitor scheduled query rule per infra/alerts/*.kql,
// scoped to Application Insights. Severity, frequency and window follow infra/alerts/README.md. Azure pages
// on-call; the app only emits the events.
param location string
param tags object
param resourceToken string
param appInsightsId string
@description('Email addresses paged by the action group.')
param alertEmails array = []
@secure()
@description('Webhook (e.g. on-call tool) the action group calls with the common alert schema. Empty: none.')
param alertWebhookUrl string = ''

// storeId: one alert per store (the query summarises by storeId); other rules fire on any row.
// The app raises each business alert once (cool-down); those rules fire on each new event. A failing function
// reports every failed attempt, so FunctionFailures is stateful: it pages once and resolves itself.
var rules = [
  { kind: 'LowStock', query: loadTextContent('../alerts/LowStock.kql'), severity: 2, frequency: 'PT15M', window: 'PT15M', dimension: 'storeId', stateful: false }
  { kind: 'NegativeStock', query: loadTextContent('../alerts/NegativeStock.kql'), severity: 1, frequency: 'PT15M', window: 'PT15M', dimension: 'storeId', stateful: false }
  { kind: 'StaleDump', query: loadTextContent('../alerts/StaleDump.kql'), severity: 1, frequency: 'PT15M', window: 'PT1H', dimension: 'storeId', stateful: false }
  { kind: 'DumpQuarantined', query: loadTextContent('../alerts/DumpQuarantined.kql'), severity: 1, frequency: 'PT15M', window: 'PT15M', dimension: 'storeId', stateful: false }
  { kind: 'IngestFailure', query: loadTextContent('../alerts/IngestFailure.kql'), severity: 0, frequency: 'PT15M', window: 'PT15M', dimension: 'storeId', stateful: false }
  { kind: 'DumpHistoryChanged', query: loadTextContent('../alerts/DumpHistoryChanged.kql'), severity: 2, frequency: 'PT1H', window: 'PT1H', dimension: 'storeId', stateful: false }
  { kind: 'UnusualSales', query: loadTextContent('../alerts/UnusualSales.kql'), severity: 2, frequency: 'PT1H', window: 'PT1H', dimension: 'storeId', stateful: false }
  { kind: 'EventBatchSetAside', query: loadTextContent('../alerts/EventBatchSetAside.kql'), severity: 1, frequency: 'PT5M', window: 'PT5M', dimension: '', stateful: false }
  { kind: 'EventsDeadLettered', query: loadTextContent('../alerts/EventsDeadLettered.kql'), severity: 2, frequency: 'PT15M', window: 'PT15M', dimension: 'reason', stateful: false }
  { kind: 'FunctionFailures', query: loadTextContent('../alerts/FunctionFailures.kql'), severity: 1, frequency: 'PT5M', window: 'PT5M', dimension: 'functionName', stateful: true }
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-oncall-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'inv-oncall'
    enabled: true
    emailReceivers: [for (email, i) in alertEmails: {
      name: 'email-${i}'
      emailAddress: email
      useCommonAlertSchema: true
    }]
    webhookReceivers: empty(alertWebhookUrl) ? [] : [
      {
        name: 'oncall-webhook'
        serviceUri: alertWebhookUrl
        useCommonAlertSchema: true
      }
    ]
  }
}

resource rule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for r in rules: {
  name: 'alert-${r.kind}-${resourceToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: r.kind
    description: 'Inventory pipeline: ${r.kind} (query: infra/alerts/${r.kind}.kql).'
    severity: r.severity
    enabled: true
    evaluationFrequency: r.frequency
    windowSize: r.window
    scopes: [ appInsightsId ]
    autoMitigate: r.stateful
    criteria: {
      allOf: [
        {
          query: r.query
          timeAggregation: 'Count'
          dimensions: empty(r.dimension) ? [] : [
            { name: r.dimension, operator: 'Include', values: [ '*' ] }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: [ actionGroup.id ] }
  }
}]

output actionGroupId string = actionGroup.id
