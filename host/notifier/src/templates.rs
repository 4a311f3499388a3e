//! A notification's title, body and collapse key, per kind: short English
//! made from the request's `data`.
//!
//! A name is the `*_name` entry when the sender gave one (`from_name`,
//! `by_name`, `opponent_name`), else the uid, else "Someone"; a mode id
//! reads as words (`zero-hour` → "Zero Hour"). Missing data never fails a
//! request: the text just says less. A title is cut to
//! [`MAX_TITLE`] characters and a body to [`MAX_BODY`].
//!
//! | kind | title | body | collapse key |
//! |---|---|---|---|
//! | `friend_request` | New friend request | `<from>` wants to be your friend. | `friend_request:<from>` |
//! | `friend_accepted` | Friend request accepted | `<by>` accepted your friend request. | `friend_accepted:<by>` |
//! | `match_invite` | Match invite | `<from>` invites you to a `<mode>` match. | `match_invite:<code>` |
//! | `rematch_offer` | Rematch? | `<from>` wants a rematch. | `rematch_offer:<match_id>` |
//! | `your_turn` | Your turn | It's your turn against `<opponent>` in `<mode>`. | `your_turn:<match_id>` |
//! | `match_result` | You won! / You lost / It's a draw / Match void | Your `<mode>` match against `<opponent>` is over (`<score>`). | `match_result:<match_id>` |
//! | `broadcast` | the broadcast's | the broadcast's | none |

use std::collections::BTreeMap;

use dashdice_proto::notify::{MAX_BODY, MAX_TITLE, NotificationKind, NotifyRequest};

/// What a request reads as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub title: String,
    pub body: String,
    /// Pushes with the same key replace each other on the device, and at
    /// most one per key per user goes out a minute.
    pub collapse_key: Option<String>,
}

/// Renders `request` by its kind's template.
pub fn render(request: &NotifyRequest) -> Rendered {
    let data = &request.data;
    let get = |key: &str| data.get(key).map(String::as_str).filter(|v| !v.is_empty());
    let keyed = |prefix: &str, key: &str| get(key).map(|v| format!("{prefix}:{v}"));
    let (title, body, collapse_key) = match request.kind {
        NotificationKind::FriendRequest => (
            "New friend request".to_owned(),
            format!("{} wants to be your friend.", name(data, "from")),
            keyed("friend_request", "from"),
        ),
        NotificationKind::FriendAccepted => (
            "Friend request accepted".to_owned(),
            format!("{} accepted your friend request.", name(data, "by")),
            keyed("friend_accepted", "by"),
        ),
        NotificationKind::MatchInvite => (
            "Match invite".to_owned(),
            match get("mode") {
                Some(mode) => format!(
                    "{} invites you to {} match.",
                    name(data, "from"),
                    with_article(&mode_name(mode))
                ),
                None => format!("{} invites you to a match.", name(data, "from")),
            },
            keyed("match_invite", "code").or_else(|| keyed("match_invite", "from")),
        ),
        NotificationKind::RematchOffer => (
            "Rematch?".to_owned(),
            format!("{} wants a rematch.", name(data, "from")),
            keyed("rematch_offer", "match_id"),
        ),
        NotificationKind::YourTurn => (
            "Your turn".to_owned(),
            your_turn_body(data),
            keyed("your_turn", "match_id"),
        ),
        NotificationKind::MatchResult => (
            match get("outcome") {
                Some("won") => "You won!",
                Some("lost") => "You lost",
                Some("draw") => "It's a draw",
                Some("void") => "Match void",
                _ => "Match over",
            }
            .to_owned(),
            result_body(data),
            keyed("match_result", "match_id"),
        ),
        NotificationKind::Broadcast => (
            request.title.clone().unwrap_or_default(),
            request.body.clone().unwrap_or_default(),
            None,
        ),
    };
    Rendered {
        title: cut(title.trim(), MAX_TITLE),
        body: cut(body.trim(), MAX_BODY),
        collapse_key,
    }
}

fn your_turn_body(data: &BTreeMap<String, String>) -> String {
    let mode = data
        .get("mode")
        .filter(|m| !m.is_empty())
        .map(|m| mode_name(m));
    match (has_name(data, "opponent"), mode) {
        (true, Some(mode)) => format!(
            "It's your turn against {} in {mode}.",
            name(data, "opponent")
        ),
        (true, None) => format!("It's your turn against {}.", name(data, "opponent")),
        (false, Some(mode)) => format!("It's your turn in {mode}."),
        (false, None) => "It's your turn.".to_owned(),
    }
}

fn result_body(data: &BTreeMap<String, String>) -> String {
    let mode = data
        .get("mode")
        .filter(|m| !m.is_empty())
        .map(|m| format!("{} match", mode_name(m)))
        .unwrap_or_else(|| "match".to_owned());
    let mut body = if has_name(data, "opponent") {
        format!("Your {mode} against {} is over", name(data, "opponent"))
    } else {
        format!("Your {mode} is over")
    };
    if let Some(score) = data.get("score").filter(|s| !s.is_empty()) {
        body.push_str(&format!(" ({score})"));
    }
    body.push('.');
    body
}

/// Whether `data` names someone under `key` (or `<key>_name`).
fn has_name(data: &BTreeMap<String, String>, key: &str) -> bool {
    [key.to_owned(), format!("{key}_name")]
        .iter()
        .any(|k| data.get(k).is_some_and(|v| !v.trim().is_empty()))
}

/// `<key>_name` if given, else `<key>` (a uid), else "Someone".
fn name(data: &BTreeMap<String, String>, key: &str) -> String {
    data.get(&format!("{key}_name"))
        .or_else(|| data.get(key))
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .unwrap_or("Someone")
        .to_owned()
}

/// A mode id as words: `zero-hour` → "Zero Hour".
fn mode_name(mode: &str) -> String {
    mode.split(['-', '_', ' '])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join(" ")
}

/// "a Classic", "an Endless".
fn with_article(words: &str) -> String {
    let vowel = words
        .chars()
        .next()
        .is_some_and(|c| "AEIOUaeiou".contains(c));
    if vowel {
        format!("an {words}")
    } else {
        format!("a {words}")
    }
}

/// At most `max` characters, an ellipsis ending a cut text.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: NotificationKind, data: &[(&str, &str)]) -> NotifyRequest {
        NotifyRequest::new("n1", "u1", kind, data.iter().copied(), 1)
    }

    #[test]
    fn a_friend_request_names_the_sender_by_name_or_uid() {
        let named = render(&request(
            NotificationKind::FriendRequest,
            &[("from", "u2"), ("from_name", "Ada")],
        ));
        assert_eq!(named.title, "New friend request");
        assert_eq!(named.body, "Ada wants to be your friend.");
        assert_eq!(named.collapse_key.as_deref(), Some("friend_request:u2"));
        let bare = render(&request(NotificationKind::FriendRequest, &[("from", "u2")]));
        assert_eq!(bare.body, "u2 wants to be your friend.");
        let nobody = render(&request(NotificationKind::FriendRequest, &[]));
        assert_eq!(nobody.body, "Someone wants to be your friend.");
        assert_eq!(nobody.collapse_key, None);
    }

    #[test]
    fn friend_accepted_names_who_accepted() {
        let r = render(&request(
            NotificationKind::FriendAccepted,
            &[("by", "u3"), ("by_name", "Grace")],
        ));
        assert_eq!(r.body, "Grace accepted your friend request.");
        assert_eq!(r.collapse_key.as_deref(), Some("friend_accepted:u3"));
    }

    #[test]
    fn an_invite_reads_its_mode_as_words() {
        let r = render(&request(
            NotificationKind::MatchInvite,
            &[("from", "u2"), ("code", "K7Q2"), ("mode", "zero-hour")],
        ));
        assert_eq!(r.body, "u2 invites you to a Zero Hour match.");
        assert_eq!(r.collapse_key.as_deref(), Some("match_invite:K7Q2"));
        let vowel = render(&request(
            NotificationKind::MatchInvite,
            &[("from", "u2"), ("mode", "endless")],
        ));
        assert_eq!(vowel.body, "u2 invites you to an Endless match.");
        assert_eq!(vowel.collapse_key.as_deref(), Some("match_invite:u2"));
    }

    #[test]
    fn your_turn_collapses_per_match() {
        let r = render(&request(
            NotificationKind::YourTurn,
            &[("match_id", "m1"), ("mode", "classic"), ("opponent", "u9")],
        ));
        assert_eq!(r.title, "Your turn");
        assert_eq!(r.body, "It's your turn against u9 in Classic.");
        assert_eq!(r.collapse_key.as_deref(), Some("your_turn:m1"));
        let bare = render(&request(NotificationKind::YourTurn, &[("match_id", "m1")]));
        assert_eq!(bare.body, "It's your turn.");
    }

    #[test]
    fn a_result_says_the_outcome() {
        for (outcome, title) in [
            ("won", "You won!"),
            ("lost", "You lost"),
            ("draw", "It's a draw"),
            ("void", "Match void"),
            ("odd", "Match over"),
        ] {
            let r = render(&request(
                NotificationKind::MatchResult,
                &[
                    ("match_id", "m1"),
                    ("mode", "last_line"),
                    ("outcome", outcome),
                ],
            ));
            assert_eq!(r.title, title);
            assert_eq!(r.body, "Your Last Line match is over.");
        }
        let scored = render(&request(
            NotificationKind::MatchResult,
            &[
                ("match_id", "m1"),
                ("outcome", "won"),
                ("opponent", "u2"),
                ("opponent_name", "Bo"),
                ("score", "120-80"),
            ],
        ));
        assert_eq!(scored.body, "Your match against Bo is over (120-80).");
        assert_eq!(scored.collapse_key.as_deref(), Some("match_result:m1"));
    }

    #[test]
    fn a_rematch_offer_collapses_per_match() {
        let r = render(&request(
            NotificationKind::RematchOffer,
            &[("from", "u2"), ("match_id", "m5")],
        ));
        assert_eq!(r.title, "Rematch?");
        assert_eq!(r.body, "u2 wants a rematch.");
        assert_eq!(r.collapse_key.as_deref(), Some("rematch_offer:m5"));
    }

    #[test]
    fn a_broadcast_is_its_own_text_within_limits() {
        let mut r = request(NotificationKind::Broadcast, &[]);
        r.title = Some("Maintenance".into());
        r.body = Some("Tonight at 22:00".into());
        let rendered = render(&r);
        assert_eq!(rendered.title, "Maintenance");
        assert_eq!(rendered.body, "Tonight at 22:00");
        assert_eq!(rendered.collapse_key, None);
        r.title = Some("t".repeat(MAX_TITLE + 10));
        r.body = Some("é".repeat(MAX_BODY + 10));
        let cut = render(&r);
        assert_eq!(cut.title.chars().count(), MAX_TITLE);
        assert!(cut.title.ends_with('…'));
        assert_eq!(cut.body.chars().count(), MAX_BODY);
    }

    #[test]
    fn every_kind_renders_a_title() {
        for kind in NotificationKind::ALL {
            let mut r = request(kind, &[]);
            r.title = Some("Hello".into());
            let rendered = render(&r);
            assert!(!rendered.title.is_empty(), "{kind:?}");
            assert!(rendered.title.chars().count() <= MAX_TITLE);
            assert!(rendered.body.chars().count() <= MAX_BODY);
        }
    }
}
