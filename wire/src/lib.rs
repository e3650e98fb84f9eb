//! Wire types shared by the agent, the registration service, the provider and the CLI.
//!
//! This crate owns the shapes that cross process boundaries: request and response bodies
//! of the registration API, the registration token and claim code formats, inventory
//! label keys and the assignment an agent receives. It performs no I/O and depends on no
//! async runtime, Kubernetes or HTTP crate, so the small on-site agent can link it.
#![forbid(unsafe_code)]

pub mod api;
pub mod assignment;
pub mod claim;
pub mod crockford;
pub mod error;
pub mod facts;
pub mod fleet;
pub mod identity;
pub mod iso9660;
pub mod labels;
pub mod operator;
pub mod secret;
pub mod seed;
pub mod shell;
pub mod token;

pub use assignment::{Assignment, GitAuth, GitSource, RevisionPolicy};
pub use claim::ClaimCode;
pub use error::{ApiError, ErrorCode};
pub use facts::DeviceFacts;
pub use secret::SecretString;
pub use token::RegistrationToken;
