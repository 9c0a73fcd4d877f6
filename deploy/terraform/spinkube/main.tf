# SpinKube on an existing cluster, following SpinKube's "Installing with Helm":
# cert-manager -> runtime-class-manager -> spin-operator CRDs -> spin-operator.
# The Shim resource (which needs runtime-class-manager's CRD to exist when it is planned)
# and everything of the app are in ../app, applied after this.
#
# Nodes that should run Spin apps need the label spin=true (deploy/k8s/platform/shim.yaml's
# nodeSelector): set it in your node group definition, e.g. an EKS managed node group's
# `labels = { spin = "true" }`.

resource "helm_release" "cert_manager" {
  count = var.install_cert_manager ? 1 : 0

  name             = "cert-manager"
  namespace        = "cert-manager"
  create_namespace = true
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = var.cert_manager_version
  wait             = true

  values = [yamlencode({
    crds = { enabled = true }
  })]
}

resource "helm_release" "runtime_class_manager" {
  name             = "runtime-class-manager"
  namespace        = "runtime-class-manager"
  create_namespace = true
  repository       = "oci://ghcr.io/spinframework/charts"
  chart            = "runtime-class-manager"
  version          = var.runtime_class_manager_version
  wait             = true

  depends_on = [helm_release.cert_manager]
}

# spin-operator's chart does not carry its CRDs (SpinApp, SpinAppExecutor): they are a
# release asset of the same version.
data "http" "spin_operator_crds" {
  url = "https://github.com/spinframework/spin-operator/releases/download/v${var.spin_operator_version}/spin-operator.crds.yaml"

  lifecycle {
    postcondition {
      condition     = self.status_code == 200
      error_message = "Could not download spin-operator ${var.spin_operator_version}'s CRDs."
    }
  }
}

resource "kubernetes_manifest" "spin_operator_crds" {
  for_each = {
    for crd in provider::kubernetes::manifest_decode_multi(data.http.spin_operator_crds.response_body) :
    crd.metadata.name => crd
  }

  manifest = each.value
}

resource "helm_release" "spin_operator" {
  name             = "spin-operator"
  namespace        = "spin-operator"
  create_namespace = true
  repository       = "oci://ghcr.io/spinframework/charts"
  chart            = "spin-operator"
  version          = var.spin_operator_version
  wait             = true

  depends_on = [
    helm_release.cert_manager,
    kubernetes_manifest.spin_operator_crds,
  ]
}
