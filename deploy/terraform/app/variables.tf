variable "kubeconfig_path" {
  description = "kubeconfig of the cluster (../spinkube applied)."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  description = "kubeconfig context; null for the current one."
  type        = string
  default     = null
}

variable "app_image" {
  description = "The app's OCI artifact, pushed by the release workflow: REGISTRY/OWNER/integrations-service:TAG (a version tag or a commit SHA)."
  type        = string
}

variable "image_pull_secret_name" {
  description = "Secret (docker-registry type, in the app's namespace) for a private registry; null when the nodes can pull already (public package, or ECR via the node role)."
  type        = string
  default     = null
}

variable "database_url" {
  description = "PostgreSQL DSN for the Secret integrations-db-secret (../aws output database_url)."
  type        = string
  sensitive   = true
}

variable "db_host" {
  description = "host:port of database_url (../aws output db_host); the ConfigMap's DB_HOST."
  type        = string

  validation {
    condition     = can(regex("^[^:/@]+:[0-9]+$", var.db_host))
    error_message = "db_host must be host:port, e.g. mydb.abc.eu-west-1.rds.amazonaws.com:5432."
  }
}

variable "db_ca_bundle_url" {
  description = "PEM bundle of the CAs that signed the database's certificate (../aws output db_ca_bundle_url), stored as the Secret spin-ca that the pods use as their CA bundle. null: spin-operator's default public roots."
  type        = string
  default     = null
}

variable "admin_token" {
  description = "The admin UI's bearer token (api_tokens entry admin-ui, scope admin; stored as its SHA-256). null: generate one. \"\": none. With no token at all (this, bot_runtime_token and extra_api_tokens all \"\"), /admin/* is the original's open API (only if nothing but the admin UI can reach the Service)."
  type        = string
  default     = null
  sensitive   = true
}

variable "bot_runtime_token" {
  description = "The bot runtime's bearer token (api_tokens entry bot-runtime, scope read: the list and one integration; stored as its SHA-256). null: generate one. \"\": none."
  type        = string
  default     = null
  sensitive   = true
}

variable "extra_api_tokens" {
  description = "More api_tokens entries (name:scope:sha256:HEX,...), appended as given: another client, or the next token of one during a rotation (README, \"Access\"): add it here, move the client, then make it that client's token and empty this."
  type        = string
  default     = ""
  sensitive   = true
}

variable "metrics_token" {
  description = "Bearer token for /metrics. null: generate one."
  type        = string
  default     = null
  sensitive   = true
}

variable "settings_keyring" {
  description = "id:base64key[,id:base64key...], current key first (32 random bytes each), sealing settings at rest. null: k1 and a generated key (kept: losing a key makes what it sealed unreadable). To rotate: \"k2:NEW,k1:OLD\", then POST /admin/keys/reseal."
  type        = string
  default     = null
  sensitive   = true
}

variable "log_level" {
  description = "trace | debug | info | warn | error."
  type        = string
  default     = "info"
}

variable "cors_allowed_origins" {
  description = "\"*\", \"none\", or a comma-separated list of the admin UI's origins, each scheme://host[:port]."
  type        = string
  default     = "*"

  validation {
    condition     = can(regex("^(\\*|none|\\s*[A-Za-z][A-Za-z0-9+.-]*://[^/?#@*,\\s]+/?\\s*(,\\s*[A-Za-z][A-Za-z0-9+.-]*://[^/?#@*,\\s]+/?\\s*)*,?)$", var.cors_allowed_origins))
    error_message = "cors_allowed_origins must be *, none, or origins such as https://admin.example.com separated by commas (no path; * stands alone)."
  }
}

variable "replicas" {
  description = "Fixed replica count when enable_autoscaling is false. Keep replicas x 64 under max_connections."
  type        = number
  default     = 2
}

variable "enable_autoscaling" {
  description = "Hand the replica count to the HPA of deploy/k8s/overlays/autoscaling/hpa.yaml (2 to 4 pods on CPU)."
  type        = bool
  default     = false
}

variable "install_shim" {
  description = "Create the runtime-class-manager Shim (deploy/k8s/platform/shim.yaml): once per cluster."
  type        = bool
  default     = true
}
