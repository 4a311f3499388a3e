//! What can go wrong loading or calling a mode. Every variant says which mode
//! misbehaved or which limit it hit; none of them takes the host down.

use dashdice_mode_sdk::ModeError;

use super::limits::Limit;

/// Why a component could not be loaded as a mode.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component does not implement the dashdice:mode/game@0.2.0 world: {0}")]
    NotAMode(String),
    #[error("the mode failed to describe itself: {0}")]
    Info(#[source] CallError),
    #[error("the mode's info is invalid: {0}")]
    InvalidInfo(String),
    #[error("the mode runtime could not be set up: {0}")]
    Engine(String),
}

/// Why a call into a mode did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The mode refused the action (not your turn, nothing to bank, ...). This
    /// is the normal way to say no; the state is unchanged.
    #[error(transparent)]
    Rejected(#[from] ModeError),
    /// The mode ran into a hard limit and was stopped.
    #[error("the mode exceeded its {0}")]
    Limit(Limit),
    /// The mode panicked; the message is what it printed.
    #[error("the mode panicked: {message}")]
    Panicked { message: String },
    /// The mode trapped for another reason (out-of-bounds access, called an
    /// import it may not use, ...).
    #[error("the mode trapped: {message}")]
    Trapped { message: String },
    /// The mode returned something the contract forbids.
    #[error("the mode returned an invalid result: {0}")]
    InvalidResult(String),
    /// A warm instance that trapped earlier cannot be used again.
    #[error("this mode instance trapped earlier and cannot be used again")]
    Poisoned,
}

impl CallError {
    /// True when the mode itself is at fault (as opposed to refusing bad input).
    pub fn is_mode_fault(&self) -> bool {
        !matches!(self, CallError::Rejected(_))
    }

    /// A stable, machine-readable name for metrics and client errors.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::Rejected(_) => "rejected",
            CallError::Limit(_) => "limit_exceeded",
            CallError::Panicked { .. } => "mode_panicked",
            CallError::Trapped { .. } => "mode_trapped",
            CallError::InvalidResult(_) => "invalid_result",
            CallError::Poisoned => "instance_poisoned",
        }
    }
}
