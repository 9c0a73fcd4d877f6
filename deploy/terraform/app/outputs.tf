output "namespace" {
  description = "Namespace of the app and its collector."
  value       = local.namespace
}

output "service_url" {
  description = "In-cluster URL of the app (the Service spin-operator creates, port 80). Point your Ingress or the admin UI here."
  value       = "http://${local.spinapp.metadata.name}.${local.namespace}.svc.cluster.local"
}

output "otel_collector_metrics_url" {
  description = "The collector's Prometheus endpoint: the Spin host's request metrics."
  value       = "http://otel-collector.${local.namespace}.svc.cluster.local:8889/metrics"
}

output "admin_token" {
  description = "The admin UI's bearer token (scope admin; give it to the admin UI's proxy). The service keeps only its hash."
  value       = local.client_tokens["admin-ui"].token
  sensitive   = true
}

output "bot_runtime_token" {
  description = "The bot runtime's bearer token (scope read). The service keeps only its hash."
  value       = local.client_tokens["bot-runtime"].token
  sensitive   = true
}

output "metrics_token" {
  description = "Bearer token Prometheus sends to /metrics."
  value       = kubernetes_secret_v1.app.data["METRICS_TOKEN"]
  sensitive   = true
}
