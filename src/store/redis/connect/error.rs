//! A failure to connect, which every caller waiting for that connection gets.

use std::fmt;
use std::sync::Arc;

use crate::store::StoreError;

/// A failure to connect, shared by everyone who waited for that connection.
#[derive(Clone)]
pub(crate) struct ConnectError {
    context: &'static str,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl ConnectError {
    pub(crate) fn new(
        context: &'static str,
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self { context, source }
    }

    pub(crate) fn into_store_error(self) -> StoreError {
        match self.source {
            Some(source) => StoreError::new(self.context, Shared(source)),
            None => StoreError::msg(self.context),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.context),
            None => f.write_str(self.context),
        }
    }
}

/// One error handed to several callers, each as the source of its own [`StoreError`].
struct Shared(Arc<dyn std::error::Error + Send + Sync>);

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
