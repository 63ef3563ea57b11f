//! Logs on stderr: text coloured only for a terminal (and never under `NO_COLOR`), or JSON;
//! the filter can be replaced while serving.

use std::ffi::OsStr;
use std::io::IsTerminal;

use anyhow::{Context, Result};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use super::settings::LogFormat;

/// The installed logger.
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
}

impl Logging {
    /// Installs the process-wide logger.
    pub fn init(filter: &str, format: LogFormat) -> Result<Self> {
        let (filter, handle) = reload::Layer::new(Self::filter(filter)?);
        let lines = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // If stderr goes away (a closed pipe), lose the logs but keep serving: by default
            // a failed write panics the logging thread.
            .log_internal_errors(false);
        let lines = match format {
            LogFormat::Text => lines
                .with_ansi(colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref()))
                .boxed(),
            LogFormat::Json => lines.json().boxed(),
        };
        tracing_subscriber::registry().with(filter).with(lines).init();
        Ok(Self { filter: handle })
    }

    /// A `--log` filter, checked.
    pub fn filter(filter: &str) -> Result<EnvFilter> {
        EnvFilter::try_new(filter).with_context(|| format!("invalid --log filter `{filter}`"))
    }

    /// Puts `filter` in force (SIGHUP).
    pub fn replace(&self, filter: EnvFilter) -> Result<()> {
        self.filter.reload(filter).context("cannot replace the log filter")
    }
}

/// Colour escapes are for people at a terminal: in `docker logs`, journald or a file they
/// are noise that breaks `grep`. `NO_COLOR` (any value but empty) turns them off even there.
fn colour(terminal: bool, no_color: Option<&OsStr>) -> bool {
    terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_for_a_terminal_and_never_under_a_set_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))), "an empty NO_COLOR is unset (no-color.org)");
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new("1"))));
    }
}
