//! What the contract (`wit/mode.wit`) says an outcome and a view are, as
//! checks on one result: pure functions, so they are unit-tested on the SDK's
//! own views.

use dashdice_mode_sdk::{MatchResult, Outcome, Standing};
use serde_json::Value;

/// The outcome names only the match's players, and its standings rank each
/// of them once.
pub(super) fn check_outcome(outcome: &Outcome, players: &[String]) -> Result<(), String> {
    if let Some(turn) = &outcome.turn
        && !players.contains(turn)
    {
        return Err(format!("{turn:?} is on turn, but is not a player"));
    }
    let Some(standings) = &outcome.standings else {
        return Ok(());
    };
    for p in players {
        let n = standings.iter().filter(|s| s.player == *p).count();
        if n != 1 {
            return Err(format!("{p:?} appears {n} times in the standings"));
        }
    }
    if standings.len() != players.len() {
        return Err(format!(
            "the standings have {} entries for {} players",
            standings.len(),
            players.len()
        ));
    }
    if !standings.iter().any(|s| s.rank == 1) {
        return Err("no one ranks 1 in the standings".into());
    }
    if let Some(s) = standings
        .iter()
        .find(|s| s.rank == 0 || (s.result != MatchResult::Loss && s.rank != 1))
    {
        return Err(format!(
            "{:?} ranks {} with result {:?}: winners and draws rank 1, ranks start at 1",
            s.player, s.rank, s.result
        ));
    }
    Ok(())
}

/// The view has the contract's fields (`mode`, `status`, `players`, `turn`,
/// `turn_score`, `winner`, `draw`) and agrees with the outcome.
pub(super) fn check_view(view: &str, outcome: &Outcome, players: &[String]) -> Result<(), String> {
    let value: Value =
        serde_json::from_str(view).map_err(|e| format!("the view is not JSON: {e}"))?;
    let Some(object) = value.as_object() else {
        return Err("the view is not a JSON object".into());
    };
    let field = |name: &str| {
        object
            .get(name)
            .ok_or_else(|| format!("the view has no `{name}`"))
    };
    if !field("mode")?.is_string() {
        return Err("`mode` is not a string".into());
    }
    if !field("turn_score")?.is_number() {
        return Err("`turn_score` is not a number".into());
    }
    let finished = match field("status")?.as_str() {
        Some("playing") => false,
        Some("finished") => true,
        _ => return Err("`status` is neither \"playing\" nor \"finished\"".into()),
    };
    if finished != outcome.standings.is_some() {
        return Err(format!(
            "`status` is {:?}, but the outcome {} standings",
            if finished { "finished" } else { "playing" },
            if outcome.standings.is_some() {
                "has"
            } else {
                "has no"
            }
        ));
    }
    let optional_id = |name: &str| -> Result<Option<String>, String> {
        match field(name)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(format!("`{name}` is neither a player id nor null")),
        }
    };
    let turn = optional_id("turn")?;
    if turn != outcome.turn {
        return Err(format!(
            "`turn` is {turn:?}, but the outcome says {:?}",
            outcome.turn
        ));
    }
    let winner = optional_id("winner")?;
    let Some(draw) = field("draw")?.as_bool() else {
        return Err("`draw` is not a boolean".into());
    };
    let Some(listed) = field("players")?.as_array() else {
        return Err("`players` is not a list".into());
    };
    let mut scores = Vec::with_capacity(listed.len());
    for p in listed {
        let id = p.get("id").and_then(Value::as_str);
        let score = p.get("score").filter(|s| s.is_number());
        match (id, score) {
            (Some(id), Some(score)) => scores.push((id, score)),
            _ => return Err(format!("`players` entry {p} is not {{\"id\", \"score\"}}")),
        }
    }
    let mut ids: Vec<&str> = scores.iter().map(|(id, _)| *id).collect();
    let mut expected: Vec<&str> = players.iter().map(String::as_str).collect();
    ids.sort_unstable();
    expected.sort_unstable();
    if ids != expected {
        return Err(format!(
            "`players` lists {ids:?}; the match's players are {expected:?}"
        ));
    }
    match &outcome.standings {
        None => {
            if winner.is_some() || draw {
                return Err("a game in play has a `winner` or a `draw`".into());
            }
        }
        Some(standings) => check_final_view(standings, &scores, winner.as_deref(), draw)?,
    }
    Ok(())
}

/// A finished game's view names the winner the standings name (or a draw),
/// and shows the standings' scores.
fn check_final_view(
    standings: &[Standing],
    scores: &[(&str, &Value)],
    winner: Option<&str>,
    draw: bool,
) -> Result<(), String> {
    let winners: Vec<&str> = standings
        .iter()
        .filter(|s| s.result == MatchResult::Win)
        .map(|s| s.player.as_str())
        .collect();
    match winner {
        Some(w) if !winners.contains(&w) => {
            return Err(format!(
                "`winner` is {w:?}, but the standings' winners are {winners:?}"
            ));
        }
        None if !winners.is_empty() => {
            return Err(format!(
                "`winner` is null, but the standings' winners are {winners:?}"
            ));
        }
        _ => {}
    }
    if draw != winners.is_empty() {
        return Err(format!(
            "`draw` is {draw}, but the standings have {} winner(s)",
            winners.len()
        ));
    }
    for s in standings {
        let shown = scores
            .iter()
            .find(|(id, _)| *id == s.player)
            .and_then(|(_, score)| score.as_i64());
        if shown != Some(i64::from(s.score)) {
            return Err(format!(
                "{:?} has score {} in the standings but {shown:?} in the view",
                s.player, s.score
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dashdice_mode_sdk::Table;

    fn players() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn playing() -> (Outcome, String) {
        let table = Table::new(players(), 0, 0);
        let outcome = Outcome {
            state: vec![],
            events: vec![],
            turn: Some("a".into()),
            standings: None,
        };
        (outcome, table.view("m", |_| {}))
    }

    fn finished(forfeit: bool) -> (Outcome, String) {
        let mut table = Table::new(players(), 0, 0);
        table.seats[0].banked = 30;
        let mut events = Vec::new();
        if forfeit {
            table.forfeit(1, &mut events);
        } else {
            table.finish(dashdice_mode_sdk::EndReason::Won, Some(0), &mut events);
        }
        let outcome = Outcome {
            state: vec![],
            events,
            turn: None,
            standings: table.standings(),
        };
        (outcome, table.view("m", |_| {}))
    }

    #[test]
    fn sdk_views_pass() {
        for (outcome, view) in [playing(), finished(false), finished(true)] {
            check_outcome(&outcome, &players()).expect("outcome");
            check_view(&view, &outcome, &players()).expect("view");
        }
    }

    #[test]
    fn views_that_disagree_with_the_outcome_fail() {
        let (outcome, view) = playing();
        let other_turn = view.replace(r#""turn":"a""#, r#""turn":"b""#);
        assert!(check_view(&other_turn, &outcome, &players()).is_err());
        let no_score = view.replace("turn_score", "turnscore");
        let why = check_view(&no_score, &outcome, &players()).expect_err("missing field");
        assert!(why.contains("turn_score"), "{why}");
        let (done, final_view) = finished(false);
        let wrong_winner = final_view.replace(r#""winner":"a""#, r#""winner":"b""#);
        assert!(check_view(&wrong_winner, &done, &players()).is_err());
        let wrong_score = final_view.replace(r#""score":30"#, r#""score":31"#);
        assert!(check_view(&wrong_score, &done, &players()).is_err());
        assert!(check_view(&view, &done, &players()).is_err(), "status");
        assert!(check_view("[]", &outcome, &players()).is_err());
        let stranger = vec!["a".to_owned(), "c".to_owned()];
        assert!(check_view(&view, &outcome, &stranger).is_err());
    }

    #[test]
    fn outcomes_rank_every_player_once() {
        let (mut done, _) = finished(false);
        check_outcome(&done, &players()).expect("sound");
        if let Some(standings) = &mut done.standings {
            standings[1].player = "a".into();
        }
        assert!(check_outcome(&done, &players()).is_err());
        let (mut playing, _) = playing();
        playing.turn = Some("z".into());
        assert!(check_outcome(&playing, &players()).is_err());
    }
}
