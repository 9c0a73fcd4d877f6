# The app on a cluster with SpinKube (../spinkube): the Shim, the namespace's objects from
# deploy/k8s (read from those files, so kubectl and Terraform deploy the same thing), the
# ConfigMap and Secrets from this root's inputs, and the SpinApp with its image.

locals {
  k8s_dir = "${path.module}/../../k8s"

  # Namespaced objects taken as they are from deploy/k8s/base.
  base_files = ["serviceaccount.yaml", "executor.yaml", "pdb.yaml", "otel-collector.yaml"]
  base_objects = merge([
    for f in local.base_files : {
      for o in provider::kubernetes::manifest_decode_multi(file("${local.k8s_dir}/base/${f}")) :
      "${o.kind}/${o.metadata.name}" => o
    }
  ]...)

  namespace_object = yamldecode(file("${local.k8s_dir}/base/namespace.yaml"))
  namespace        = local.namespace_object.metadata.name
  config_object    = yamldecode(file("${local.k8s_dir}/base/config.yaml"))

  # Each client's token (null: generated; "": that client gets none), and its name and scope in
  # api_tokens. The service's Secret holds only their SHA-256 (sha256: entries).
  client_tokens = {
    "admin-ui" = {
      scope = "admin"
      token = var.admin_token != null ? var.admin_token : random_password.admin_token.result
    }
    "bot-runtime" = {
      scope = "read"
      token = var.bot_runtime_token != null ? var.bot_runtime_token : random_password.bot_runtime_token.result
    }
  }
  api_tokens = join(",", concat(
    [for name, client in local.client_tokens : "${name}:${client.scope}:sha256:${sha256(client.token)}" if client.token != ""],
    var.extra_api_tokens == "" ? [] : [var.extra_api_tokens],
  ))
  shim_object = yamldecode(file("${local.k8s_dir}/platform/shim.yaml"))
  hpa_object  = yamldecode(file("${local.k8s_dir}/overlays/autoscaling/hpa.yaml"))

  # deploy/k8s/base/spinapp.yaml with this root's image, replica mode and pull secret.
  spinapp_file = yamldecode(file("${local.k8s_dir}/base/spinapp.yaml"))
  spinapp = merge(local.spinapp_file, {
    spec = merge(
      { for k, v in local.spinapp_file.spec : k => v if k != "replicas" },
      { image = var.app_image },
      # for-expressions, not conditionals: the two branches would be different object types.
      { for k, v in { enableAutoscaling = true } : k => v if var.enable_autoscaling },
      { for k, v in { replicas = var.replicas } : k => v if !var.enable_autoscaling },
      { for k, v in { imagePullSecrets = [{ name = var.image_pull_secret_name }] } : k => v if var.image_pull_secret_name != null },
    )
  })
}

# --- once per cluster -------------------------------------------------------------------

resource "kubernetes_manifest" "shim" {
  count    = var.install_shim ? 1 : 0
  manifest = local.shim_object
}

# --- namespace, configuration, secrets ----------------------------------------------------

resource "kubernetes_manifest" "namespace" {
  manifest = local.namespace_object
}

resource "kubernetes_config_map_v1" "config" {
  metadata {
    name      = local.config_object.metadata.name
    namespace = local.namespace
    labels    = local.config_object.metadata.labels
  }

  data = merge(local.config_object.data, {
    DB_HOST              = var.db_host
    LOG_LEVEL            = var.log_level
    CORS_ALLOWED_ORIGINS = var.cors_allowed_origins
  })

  depends_on = [kubernetes_manifest.namespace]
}

# The admin UI's token (scope admin). The resource keeps the name it had when it was the one
# admin_token: an existing deployment's admin UI keeps its token through the upgrade.
resource "random_password" "admin_token" {
  length  = 48
  special = false
}

# The bot runtime's token (scope read: the list and one integration, nothing else).
resource "random_password" "bot_runtime_token" {
  length  = 48
  special = false
}

resource "random_password" "metrics_token" {
  length  = 48
  special = false
}

# The generated key of the keyring (its id is k1). The resource keeps the name it had when
# the app took a single settings_encryption_key: renaming it would replace the key.
resource "random_bytes" "settings_encryption_key" {
  length = 32

  # Replacing it would make every sealed setting unreadable.
  lifecycle {
    prevent_destroy = true
  }
}

resource "kubernetes_secret_v1" "db" {
  metadata {
    name      = "integrations-db-secret"
    namespace = local.namespace
  }

  data = {
    DATABASE_URL = var.database_url
  }

  depends_on = [kubernetes_manifest.namespace]
}

resource "kubernetes_secret_v1" "app" {
  metadata {
    name      = "integrations-app-secrets"
    namespace = local.namespace
  }

  data = {
    # The clients' tokens as hashes, and extra_api_tokens; "" (no token at all) opens /admin/*.
    API_TOKENS = local.api_tokens
    # 0.2.0's single token: its place is taken by api_tokens' admin-ui.
    ADMIN_TOKEN = ""
    # null: generated; "" is kept (it turns the feature off).
    METRICS_TOKEN    = var.metrics_token != null ? var.metrics_token : random_password.metrics_token.result
    SETTINGS_KEYRING = var.settings_keyring != null ? var.settings_keyring : "k1:${random_bytes.settings_encryption_key.base64}"
  }

  depends_on = [kubernetes_manifest.namespace]
}

data "http" "db_ca_bundle" {
  count = var.db_ca_bundle_url == null ? 0 : 1
  url   = var.db_ca_bundle_url

  lifecycle {
    postcondition {
      condition     = self.status_code == 200 && strcontains(self.response_body, "BEGIN CERTIFICATE")
      error_message = "db_ca_bundle_url did not return a PEM bundle."
    }
  }
}

# The executor's installDefaultCACerts mounts the Secret spin-ca as the pods' CA bundle and
# only creates it (public roots) when it does not exist. The app's one TLS peer is the
# database, so its CA bundle is all the pods need.
resource "kubernetes_secret_v1" "ca" {
  count = var.db_ca_bundle_url == null ? 0 : 1

  metadata {
    name      = "spin-ca"
    namespace = local.namespace
  }

  data = {
    "ca-certificates.crt" = data.http.db_ca_bundle[0].response_body
  }

  depends_on = [kubernetes_manifest.namespace]
}

# --- the app ------------------------------------------------------------------------------

resource "kubernetes_manifest" "base" {
  for_each = local.base_objects
  manifest = each.value

  depends_on = [kubernetes_manifest.namespace]
}

resource "kubernetes_manifest" "spinapp" {
  manifest = local.spinapp

  depends_on = [
    kubernetes_manifest.shim,
    kubernetes_manifest.base,
    kubernetes_config_map_v1.config,
    kubernetes_secret_v1.db,
    kubernetes_secret_v1.app,
    kubernetes_secret_v1.ca,
  ]
}

resource "kubernetes_manifest" "hpa" {
  count    = var.enable_autoscaling ? 1 : 0
  manifest = local.hpa_object

  depends_on = [kubernetes_manifest.spinapp]
}
