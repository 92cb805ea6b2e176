//! Refresh-token families through a mirror: straight to its Redis store. A mirror
//! copies revocations; families are not revocations, and every rotation must be
//! decided by Redis, atomically, whichever replica presents the token.

use async_trait::async_trait;

use super::MirrorStore;
use crate::RevocationKey;
use crate::sessions::refresh::{NewFamily, RefreshStore, Rotation, RotationOutcome};
use crate::store::StoreError;

#[async_trait]
impl RefreshStore for MirrorStore {
    async fn start_family(&self, family: &NewFamily) -> Result<(), StoreError> {
        self.shared.redis.start_family(family).await
    }

    async fn rotate(&self, rotation: &Rotation) -> Result<RotationOutcome, StoreError> {
        RefreshStore::rotate(&self.shared.redis, rotation).await
    }

    async fn end_family(&self, family: &RevocationKey, subject: &RevocationKey) -> Result<(), StoreError> {
        self.shared.redis.end_family(family, subject).await
    }

    async fn end_families_of(&self, subject: &RevocationKey) -> Result<(), StoreError> {
        self.shared.redis.end_families_of(subject).await
    }
}
