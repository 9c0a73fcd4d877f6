variable "region" {
  description = "AWS region of the registry and the database (the cluster's region)."
  type        = string
}

variable "name" {
  description = "Prefix for every resource name."
  type        = string
  default     = "integrations"
}

variable "tags" {
  description = "Tags for every resource (owner, cost centre, environment, ...)."
  type        = map(string)
  default     = {}
}

variable "create_ecr_repository" {
  description = "Create an ECR repository for the app's OCI artifact. false when the release pipeline's ghcr.io (or another registry) is used."
  type        = bool
  default     = true
}

variable "ecr_repository_name" {
  description = "Name of the ECR repository."
  type        = string
  default     = "integrations-service"
}

variable "vpc_id" {
  description = "VPC of the Kubernetes cluster; the database is placed in it."
  type        = string
}

variable "db_subnet_ids" {
  description = "Private subnets (at least two availability zones) for the database."
  type        = list(string)
}

variable "db_client_security_group_ids" {
  description = "Security groups allowed to reach PostgreSQL: the cluster nodes' (pods that share the node's network, as with the VPC CNI)."
  type        = list(string)
  default     = []
}

variable "db_client_cidr_blocks" {
  description = "CIDR blocks allowed to reach PostgreSQL, when pod addresses are not covered by a security group."
  type        = list(string)
  default     = []
}

variable "db_engine_version" {
  description = "PostgreSQL major (or major.minor) version. The test suite runs against 15."
  type        = string
  default     = "15"
}

variable "db_instance_class" {
  description = "RDS instance class. Its memory sets RDS's default max_connections, which bounds replicas x 64 (deploy/README.md, Capacity)."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_max_connections" {
  description = "PostgreSQL max_connections; null keeps RDS's default for the instance class. Applied at the next reboot."
  type        = number
  default     = null
}

variable "db_allocated_storage" {
  description = "Initial storage in GiB."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage" {
  description = "Storage autoscaling ceiling in GiB."
  type        = number
  default     = 100
}

variable "db_multi_az" {
  description = "Standby in a second availability zone."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery)."
  type        = number
  default     = 7
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database. Turn off deliberately before a destroy."
  type        = bool
  default     = true
}

variable "db_name" {
  description = "Database the app uses; it creates its tables there on first use."
  type        = string
  default     = "integrations"
}

variable "db_username" {
  description = "Master user, which the app uses (it needs CREATE on the database for its first-use bootstrap)."
  type        = string
  default     = "integrations"
}
