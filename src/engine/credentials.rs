//! Checking the credentials of `api_key` and `basic_auth` conditions, and saying why they were refused when
//! tracing. Only names leave here: a key or password is read from its header, checked and dropped.

use super::{Host, Run};
use crate::credentials::{CredentialSlot, Failure};
use crate::ruleset::{Condition, Slot};
use crate::trace::Event;

impl<'r, H: Host> Run<'r, '_, H> {
    /// The name the presented credentials belong to, or why none; recorded when tracing.
    pub(super) fn check_credentials(&mut self, credential: &'r CredentialSlot) -> Result<&'r str, Failure> {
        let verdict = self.verify(credential);
        self.record(|| Event::Credentials(credential.describe(&verdict)));
        verdict
    }

    fn verify(&mut self, credential: &'r CredentialSlot) -> Result<&'r str, Failure> {
        self.ensure_view(credential.source, &credential.view);
        let presented = self.view(credential.source, &credential.view);
        credential.check.verify(presented.as_deref())
    }

    /// For a trace: why a credential condition does not hold (the check runs again; the module never asks).
    pub(super) fn credential_miss(&mut self, condition: &Condition) -> Option<String> {
        let Some(Slot::Credential(credential)) = self.rules.slots.get(condition.slot) else { return None };
        let failure = self.verify(credential).err()?;
        Some(format!("got {failure}, wanted {}", condition.wanted))
    }
}
