//! `fermyon:spin/variables@2.0.0`: a component reads only the variables its manifest section
//! gives it, resolved when it asks.

use crate::bindings::variables::{self, Error};
use crate::state::InstanceState;
use crate::variables::VariableError;

impl variables::Host for InstanceState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        let resolved = self.component.app.variables.resolve(&self.component.id, &name);
        Ok(resolved.map_err(|error| match error {
            VariableError::InvalidName(message) => Error::InvalidName(message),
            VariableError::Undefined(message) => Error::Undefined(message),
            VariableError::Provider(message) => Error::Provider(message),
            VariableError::Other(message) => Error::Other(message),
        }))
    }
}
