//! The loop guard: which rules led to an event, and when to stop.
//!
//! A rule whose run-command target matches the server's own "Command Status
//! Change" events would otherwise trigger itself for ever (a review saw 185
//! root commands in ten seconds). Every command a rule starts records its
//! causation chain (the rules that led to it, oldest first); an event about
//! that command inherits the chain, and a rule that would appear in a chain
//! more than [`MAX_TRIGGERS`] times, or extend it past [`MAX_DEPTH`], is
//! stopped: the delivery is dead-lettered and a "Rule Loop Stopped" event
//! says so.

/// How often one rule may appear in one causation chain.
pub const MAX_TRIGGERS: usize = 3;
/// The longest causation chain, whatever the rules in it.
pub const MAX_DEPTH: usize = 16;

/// The chain of the effect `rule` is about to have, given the chain of the
/// event that triggered it; or why it is stopped.
pub fn extend(chain: &[String], rule: &str) -> Result<Vec<String>, String> {
    let triggers = chain.iter().filter(|r| *r == rule).count() + 1;
    if triggers > MAX_TRIGGERS {
        return Err(format!(
            "loop stopped: rule {rule} was triggered {triggers} times by its own effects (causation: {})",
            chain.join(" > ")
        ));
    }
    if chain.len() >= MAX_DEPTH {
        return Err(format!(
            "loop stopped: the causation chain reached {MAX_DEPTH} rules ({})",
            chain.join(" > ")
        ));
    }
    let mut next = chain.to_vec();
    next.push(rule.to_string());
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(rules: &[&str]) -> Vec<String> {
        rules.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn a_rule_may_follow_itself_a_few_times_then_stops() {
        let mut current = Vec::new();
        for _ in 0..MAX_TRIGGERS {
            current = extend(&current, "restart").unwrap();
        }
        let stopped = extend(&current, "restart").unwrap_err();
        assert!(
            stopped.contains("restart was triggered 4 times"),
            "{stopped}"
        );
        assert!(
            extend(&current, "other").is_ok(),
            "other rules may still follow"
        );
    }

    #[test]
    fn long_chains_of_different_rules_stop_too() {
        let long: Vec<String> = (0..MAX_DEPTH).map(|i| format!("r{i}")).collect();
        assert!(extend(&long, "new").unwrap_err().contains("reached 16"));
        assert_eq!(extend(&chain(&["a"]), "b").unwrap(), chain(&["a", "b"]));
    }
}
