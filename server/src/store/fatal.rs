//! The store's failure: raised once, when an answer can no longer be promised either way,
//! and heard by whoever runs the store (the server stops at once and exits non-zero).

use std::sync::{Mutex, OnceLock, PoisonError};

use tracing::error;

use super::StoreError;

type Hook = Box<dyn FnOnce() + Send>;

/// Whether the store has failed, and who to tell when it does.
#[derive(Default)]
pub struct Fatal {
    error: OnceLock<String>,
    hooks: Mutex<Vec<Hook>>,
}

impl std::fmt::Debug for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fatal").field("error", &self.error.get()).finish_non_exhaustive()
    }
}

impl Fatal {
    /// Records the failure (the first one wins) and runs the hooks.
    pub fn raise(&self, cause: &StoreError) {
        if self.error.set(cause.to_string()).is_err() {
            return;
        }
        error!(error = %cause, "the store failed: nothing more is acknowledged; restart the server (the write-ahead log replays what is on disk)");
        let hooks = std::mem::take(&mut *self.hooks.lock().unwrap_or_else(PoisonError::into_inner));
        for hook in hooks {
            hook();
        }
    }

    /// Runs `hook` when the store fails, or now if it has.
    pub fn on_raise(&self, hook: impl FnOnce() + Send + 'static) {
        let mut hooks = self.hooks.lock().unwrap_or_else(PoisonError::into_inner);
        if self.error.get().is_some() {
            drop(hooks);
            hook();
        } else {
            hooks.push(Box::new(hook));
        }
    }

    /// The failure, if there was one.
    pub fn error(&self) -> Option<&str> {
        self.error.get().map(String::as_str)
    }
}
