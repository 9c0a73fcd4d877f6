variable "kubeconfig_path" {
  description = "kubeconfig of the existing cluster (e.g. from `aws eks update-kubeconfig`)."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  description = "kubeconfig context; null for the current one."
  type        = string
  default     = null
}

variable "install_cert_manager" {
  description = "Install cert-manager (spin-operator's webhooks need it). false if the cluster already runs it."
  type        = bool
  default     = true
}

variable "cert_manager_version" {
  description = "cert-manager Helm chart version."
  type        = string
  default     = "v1.20.0"
}

variable "runtime_class_manager_version" {
  description = "runtime-class-manager Helm chart version (installs containerd-shim-spin on labelled nodes)."
  type        = string
  default     = "0.2.0"
}

variable "spin_operator_version" {
  description = "spin-operator version: its Helm chart and the CRDs of the same release."
  type        = string
  default     = "0.6.1"
}
