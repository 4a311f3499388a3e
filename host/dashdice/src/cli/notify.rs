//! Operators' notification tools: `notify broadcast`, one request to the
//! notifiers (`dd.notify.broadcast`, which the NATS permissions give to the
//! `ops` user alone). The notifiers answer once the broadcast is queued,
//! with how many users it will reach; they pace the rest.

use std::io::Write;
use std::time::Duration;

use dashdice_proto::client::{NotifierClient, Requester};
use dashdice_proto::notify::{Audience, Broadcast, check_data, check_text};
use dashdice_service::startup;

use super::CliError;
use super::args::{BroadcastArgs, NotifyCommand};

/// How long the notifiers may take to list the audience and queue it.
const BROADCAST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(command: NotifyCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        NotifyCommand::Broadcast(args) => broadcast(args, out),
    }
}

fn broadcast(args: BroadcastArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let id = match &args.id {
        Some(id) => id.clone(),
        None => dashdice_proto::ids::random_hex::<8>()
            .map(|hex| format!("b-{hex}"))
            .map_err(|e| CliError::Service(e.to_string()))?,
    };
    let request = Broadcast {
        id,
        audience: args.audience.clone(),
        title: args.title.clone(),
        body: args.body.clone(),
        data: args.data.iter().cloned().collect(),
    };
    // Refused here rather than by the notifiers: the same checks.
    check_text(&request.title, &request.body).map_err(CliError::Service)?;
    check_data(&request.data).map_err(CliError::Service)?;
    let sent = startup::block_on(async {
        let client = args
            .nats
            .nats()
            .connect("dashdice-notify")
            .await
            .map_err(|e| CliError::Service(format!("NATS at {}: {e}", args.nats.nats_url)))?;
        NotifierClient::new(Requester::new(client, BROADCAST_TIMEOUT))
            .broadcast(&request)
            .await
            .map_err(|e| {
                CliError::Service(format!(
                    "broadcast {}: {e} (only the ops NATS user may broadcast)",
                    request.id
                ))
            })
    })??;
    if args.json {
        let report = serde_json::json!({ "id": request.id, "users": sent.users });
        serde_json::to_writer(&mut *out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "broadcast {} queued for {} users ({})",
            request.id,
            sent.users,
            audience_name(&request.audience)
        )?;
    }
    Ok(())
}

fn audience_name(audience: &Audience) -> String {
    match audience {
        Audience::All => "all".to_owned(),
        Audience::Online => "online".to_owned(),
        Audience::Region { region } => format!("online in {region}"),
    }
}
