//! dashdice-notifier: the notifier role.
//!
//! Roles that have something to tell a player publish a
//! [`NotifyRequest`](dashdice_proto::notify::NotifyRequest) on the
//! notification stream and move on. The notifier reads the stream through a
//! durable consumer (nothing is lost while it restarts) and, for each
//! request: renders its title and body ([`templates`]), keeps it in the
//! user's inbox (`dashdice_store::inbox`, Redis, idempotent by id), hands it
//! to the user's open sockets (a `Notice::Notification` on their notice
//! subject), and when they are away or offline pushes it to their devices
//! through FCM ([`fcm`]), capped per user and collapsed per key.
//!
//! - [`templates`]: a request's title, body and collapse key, per kind.
//! - [`fcm`]: the FCM HTTP v1 client: OAuth 2 tokens from a service-account
//!   key, `messages:send` per device, retries, unregistered tokens.
//! - [`delivery`]: the rules, on the stores alone: inbox or not, told or
//!   not, push or not, to which devices; the per-user cap and collapse
//!   (kept in Redis, so every notifier agrees); the inbox and device
//!   requests and broadcast audiences.
//! - [`service`]: the NATS side: the consumer, the inbox and device
//!   endpoints, broadcasts.
//!
//! **Architecture Invariant:** this is the only crate that speaks to FCM or
//! Google's OAuth endpoint; no other role waits on a push.

pub mod delivery;
pub mod fcm;
pub mod service;
pub mod templates;
