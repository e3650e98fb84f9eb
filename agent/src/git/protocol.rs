//! The git conversation, with gix-protocol: handshake and `ls-refs` (the ref check), then
//! a shallow pack of one commit, then only the blobs the assigned paths need.
//!
//! When the server speaks protocol v2 and supports `filter`, the commit pack is asked for
//! with `filter blob:none` (commit and trees only) and a second request wants exactly the
//! missing blobs under the assigned paths, like `git clone --filter=blob:none --sparse`.
//! Otherwise the commit comes with its whole tree in one pack.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gix::protocol::fetch::negotiate::{self, Action, Round};
use gix::protocol::fetch::{self as proto_fetch, Arguments, Negotiate, Shallow, Tags};
use gix::protocol::transport::client::blocking_io::Transport;
use gix::protocol::transport::{Protocol, Service};
use gix::protocol::Handshake;
use gix::ObjectId;

/// An open conversation with an upload-pack server.
pub(crate) struct Conversation<T: Transport> {
    transport: T,
    handshake: Handshake,
}

fn user_agent() -> (&'static str, Option<String>) {
    (
        "agent",
        Some(concat!("siteboot-agent/", env!("CARGO_PKG_VERSION")).into()),
    )
}

impl<T: Transport> Conversation<T> {
    /// Configure the transport and perform the handshake. `auth_asked` is set when the
    /// server wants credentials we did not send up front (we never prompt).
    pub(crate) fn open(
        mut transport: T,
        options: Option<Box<dyn Any>>,
        auth_asked: Arc<AtomicBool>,
    ) -> gix::Result<Self> {
        if let Some(options) = options {
            transport.configure(&*options)?;
        }
        let handshake = gix::protocol::handshake(
            &mut transport,
            Service::UploadPack,
            move |action| {
                if matches!(action, gix::protocol::credentials::helper::Action::Get(_)) {
                    auth_asked.store(true, Ordering::SeqCst);
                }
                Ok(None)
            },
            Vec::new(),
            &mut gix::progress::Discard,
        )?;
        Ok(Conversation {
            transport,
            handshake,
        })
    }

    /// The commit `refs/heads/<branch>` points to, `None` when there is no such branch.
    pub(crate) fn branch_head(&mut self, branch: &str) -> gix::Result<Option<ObjectId>> {
        let full = format!("refs/heads/{branch}");
        let spec =
            gix::refspec::parse(full.as_str().into(), gix::refspec::parse::Operation::Fetch)?
                .to_owned();
        let context = proto_fetch::refmap::init::Context {
            fetch_refspecs: vec![spec],
            extra_refspecs: Vec::new(),
        };
        let map = self
            .handshake
            .prepare_lsrefs_or_extract_refmap(user_agent(), true, context)?
            .fetch_blocking(gix::progress::Discard, &mut self.transport, false)?;
        Ok(map
            .mappings
            .iter()
            .find(|m| m.remote.as_name().is_some_and(|n| n == full.as_str()))
            .and_then(|m| m.remote.as_id())
            .map(ToOwned::to_owned))
    }

    /// Whether the server can leave blobs out (`filter`, protocol v2 only: the blobs are
    /// asked for in a second request on the same conversation).
    pub(crate) fn supports_filter(&self) -> bool {
        self.handshake.server_protocol_version == Protocol::V2
            && self
                .handshake
                .capabilities
                .capability("fetch")
                .and_then(|c| c.supports("filter"))
                .unwrap_or(false)
    }

    /// Receive a pack with `wants` (knowing we have `haves`) into the object store.
    pub(crate) fn fetch(
        &mut self,
        repo: &gix::Repository,
        wants: &[ObjectId],
        haves: &[ObjectId],
        shallow: Shallow,
        filter: Option<&str>,
    ) -> gix::Result<()> {
        let mut negotiate = OneRound {
            wants,
            haves,
            filter,
        };
        let pack_dir = repo.git_dir().join("objects").join("pack");
        let objects = repo.objects.clone();
        let consume = move |pack: &mut dyn std::io::BufRead,
                            progress: &mut dyn gix::progress::DynNestedProgress,
                            interrupt: &AtomicBool|
              -> gix::Result<bool> {
            let options = gix::odb::pack::bundle::write::Options {
                thread_limit: Some(1),
                ..Default::default()
            };
            gix::odb::pack::Bundle::write_to_directory(
                pack,
                Some(&pack_dir),
                progress,
                interrupt,
                Some(objects),
                gix::hash::Kind::Sha1,
                options,
            )?;
            Ok(true)
        };
        let shallow_file = repo.shallow_file()?;
        gix::protocol::fetch(
            &mut negotiate,
            consume,
            gix::progress::Discard,
            &AtomicBool::new(false),
            proto_fetch::Context {
                handshake: &mut self.handshake,
                transport: &mut self.transport,
                user_agent: user_agent(),
                trace_packetlines: false,
            },
            proto_fetch::Options {
                shallow_file,
                shallow: &shallow,
                tags: Tags::None,
                reject_shallow_remote: false,
            },
        )?;
        Ok(())
    }

    /// Politely end the conversation (stateful transports only).
    pub(crate) fn end(mut self) {
        gix::protocol::indicate_end_of_interaction(&mut self.transport, false).ok();
    }
}

/// Wants, haves, done: one round, no negotiation walk (the haves are exact).
struct OneRound<'a> {
    wants: &'a [ObjectId],
    haves: &'a [ObjectId],
    filter: Option<&'a str>,
}

impl Negotiate for OneRound<'_> {
    fn mark_complete_and_common_ref(&mut self) -> gix::Result<Action> {
        Ok(Action::MustNegotiate {
            remote_ref_target_known: vec![false; self.wants.len()],
        })
    }

    fn add_wants(&mut self, arguments: &mut Arguments, _known: &[bool]) -> bool {
        // Nobody reads the server's progress text: do not pay for it on the wire.
        arguments.add_feature("no-progress");
        for want in self.wants {
            arguments.want(want);
        }
        if let Some(filter) = self.filter {
            arguments.filter(filter);
        }
        !self.wants.is_empty()
    }

    fn one_round(
        &mut self,
        _state: &mut negotiate::one_round::State,
        arguments: &mut Arguments,
        _previous: Option<&proto_fetch::Response>,
    ) -> gix::Result<(Round, bool)> {
        for have in self.haves {
            arguments.have(have);
        }
        let round = Round {
            haves_sent: self.haves.len(),
            in_vain: 0,
            haves_to_send: 0,
            previous_response_had_at_least_one_in_common: false,
        };
        Ok((round, true))
    }
}
