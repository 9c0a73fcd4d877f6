output "repository_url" {
  description = "Where to push the app (`spin registry push <repository_url>:<tag>`); null when create_ecr_repository is false."
  value       = var.create_ecr_repository ? aws_ecr_repository.app[0].repository_url : null
}

output "db_host" {
  description = "host:port of the database: the ConfigMap's DB_HOST (Spin's allowed_outbound_hosts)."
  value       = "${aws_db_instance.db.address}:${aws_db_instance.db.port}"
}

output "database_url" {
  description = "DATABASE_URL for the Secret integrations-db-secret."
  value       = "postgres://${var.db_username}:${random_password.db.result}@${aws_db_instance.db.address}:${aws_db_instance.db.port}/${var.db_name}?sslmode=require"
  sensitive   = true
}

output "db_instance_id" {
  description = "RDS instance identifier (CloudWatch metrics such as DatabaseConnections)."
  value       = aws_db_instance.db.identifier
}

output "db_ca_bundle_url" {
  description = "RDS's CA bundle: the Spin host verifies the server certificate, so the pods need it (../app puts it in the Secret spin-ca)."
  value       = "https://truststore.pki.rds.amazonaws.com/${var.region}/${var.region}-bundle.pem"
}
