output "spin_operator_version" {
  description = "Installed spin-operator (chart and CRDs)."
  value       = helm_release.spin_operator.version
}

output "runtime_class_manager_version" {
  description = "Installed runtime-class-manager chart."
  value       = helm_release.runtime_class_manager.version
}

output "next_step" {
  description = "What to apply next."
  value       = "Label the nodes spin=true if their node group does not, then apply ../app (Shim, Secrets, SpinApp)."
}
