//! dashdice: the one binary. Every role and tool lives in a crate of its own
//! (see ARCHITECTURE.md); this crate only parses the command line, starts
//! roles and prints what tools report ([`cli`]).

pub mod cli;
