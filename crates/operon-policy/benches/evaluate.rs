//! How long one authorisation takes: `evaluate` for a principal with a
//! realistic set of policies (5 policies, 40 statements, node-tag and
//! principal conditions, wildcards), over requests for many nodes, as when a
//! command targets a fleet. Goal: under 2 µs per decision, so authorising a
//! command on 10,000 nodes costs under 20 ms.
//!
//! Run: `cargo bench -p operon-policy --bench evaluate`

use std::hint::black_box;
use std::time::{Duration, Instant};

use operon_policy::{NamedPolicy, Policy, Request, evaluate};
use serde_json::json;

const NOUNS: [&str; 8] = [
    "commands",
    "nodes",
    "sessions",
    "params",
    "workflows",
    "approvals",
    "events",
    "rules",
];
const ENVS: [&str; 4] = ["dev", "staging", "prod", "lab"];
const ROLES: [&str; 5] = ["web", "db", "cache", "queue", "batch"];

fn policies() -> Vec<NamedPolicy> {
    (0..5)
        .map(|p| {
            let statements: Vec<_> = (0..8)
                .map(|s| {
                    let noun = NOUNS[(p * 8 + s) % NOUNS.len()];
                    let env = ENVS[(p + s) % ENVS.len()];
                    let role = ROLES[s % ROLES.len()];
                    let effect = if (p + s) % 7 == 6 { "Deny" } else { "Allow" };
                    json!({
                        "Sid": format!("S{p}x{s}"),
                        "Effect": effect,
                        "Action": [format!("{noun}:Get*"), format!("{noun}:List"), format!("{noun}:Run")],
                        "Resource": [format!("node/{role}-*"), format!("param/{env}/*")],
                        "Condition": {
                            "StringEquals": {"operon:NodeTag/env": [env, "lab"]},
                            "StringLikeIfExists": {"operon:NodeTag/role": format!("{role}*")},
                            "StringNotEquals": {"operon:Principal": "mallory"}
                        }
                    })
                })
                .collect();
            let document = json!({"Version": "2012-10-17", "Statement": statements});
            NamedPolicy::new(format!("policy-{p}"), Policy::from_value(&document).expect("valid"))
        })
        .collect()
}

fn requests() -> Vec<Request> {
    (0..1000)
        .map(|i| {
            let role = ROLES[i % ROLES.len()];
            Request::new(
                format!("{}:Run", NOUNS[i % NOUNS.len()]),
                format!("node/{role}-{i}"),
            )
            .with_principal("alice")
            .with_node_tags([
                ("env", ENVS[i % ENVS.len()]),
                ("role", role),
                ("team", "platform"),
                ("region", "eu-west"),
            ])
        })
        .collect()
}

fn main() {
    let policies = policies();
    let requests = requests();
    let mut allowed = 0usize;
    let mut decisions = 0usize;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        for request in &requests {
            allowed += usize::from(black_box(evaluate(black_box(&policies), request)).is_allowed());
        }
        decisions += requests.len();
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "evaluate: {decisions} decisions in {seconds:.2}s = {:.0} decisions/s, {:.2} µs each ({} allowed)",
        decisions as f64 / seconds,
        seconds * 1e6 / decisions as f64,
        allowed
    );
}
