// Event Hubs namespace (Standard, local/SAS auth disabled) with the `sales` hub and the consumer group the
// `apply_sales` trigger reads with. POS producers and HTTP ingress send; the function receives.
param location string
param tags object
param resourceToken string
param eventHubName string = 'sales'
param consumerGroupName string = 'apply-sales'
@minValue(1)
@maxValue(32)
@description('Partitions of the hub (fixed after creation on Standard). Events are keyed by storeId.')
param partitionCount int = 4
@minValue(1)
@maxValue(7)
@description('Days Event Hubs keeps events (Standard: at most 7). STOCK_LEDGER_TTL_DAYS must stay longer.')
param retentionDays int = 7
@minValue(1)
@maxValue(40)
param capacity int = 1
@description('Auto-inflate throughput units up to this many (0: off).')
param maximumThroughputUnits int = 0

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: 'evhns-${resourceToken}'
  location: location
  tags: tags
  sku: { name: 'Standard', tier: 'Standard', capacity: capacity }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    isAutoInflateEnabled: maximumThroughputUnits > 0
    maximumThroughputUnits: maximumThroughputUnits
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: eventHubName
  properties: {
    partitionCount: partitionCount
    messageRetentionInDays: retentionDays
  }
}

resource consumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: hub
  name: consumerGroupName
}

output namespaceId string = namespace.id
output namespaceName string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output hubId string = hub.id
output hubName string = hub.name
output consumerGroupName string = consumerGroup.name
