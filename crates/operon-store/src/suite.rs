//! The store test suite, written against the traits and run for every
//! backend. Each test takes a fresh, empty backend as a [`DynStore`], the way
//! the server holds one. A backend runs the whole suite with
//! `crate::suite::store_suite!(open)`, where `open()` returns a guard (kept
//! alive for the test) and the store.
//!
//! Concurrency tests spawn many tasks on a multi-threaded runtime: on
//! SQLite they pass because the statements are right *and* writers queue;
//! on an engine with row locks only the statements can make them pass.

/// Instantiate every suite test for one backend.
macro_rules! store_suite {
    ($open:path) => {
        crate::suite::store_suite!(@tests $open; enrollment_counts_uses_refuses_expired_and_token_tags_win,
            results_are_idempotent_the_first_final_result_wins,
            documents_are_versioned,
            a_document_default_version_moves_only_when_set,
            a_user_and_its_roles_are_written_together,
            concurrent_document_writes_get_distinct_versions,
            concurrent_enrollments_never_exceed_uses_or_fail_with_locks,
            a_revoked_enrollment_token_enrolls_nothing,
            token_tags_win_over_keys_differing_in_case_and_suffixed_names_stay_short,
            concurrent_event_batches_get_unique_gap_free_sequence_numbers,
            concurrent_audit_appends_form_one_chain,
            batched_agent_writes_and_dispatches_are_idempotent,
            workflow_versions_steps_and_cleanup_on_finish,
            outbox_claims_retries_dead_letters_and_redrives_with_the_same_id,
            buses_rules_and_refusing_to_delete_a_used_bus,
            event_sequence_numbers_are_never_reused_after_pruning,
            claims_have_an_owner_and_expire,
            concurrent_claims_hand_out_each_delivery_once,
            both_credentials_work_until_the_rotation_completes_then_only_the_new_one,
            an_unconfirmed_rotation_is_retired_when_another_one_completes,
            parameters_are_versioned_labelled_trimmed_and_deleted,
            concurrent_parameter_puts_get_distinct_versions_or_move,
            sealed_parameters_and_access_keys_are_resealed_only_from_what_was_read,
            syncs_and_their_node_states_are_kept_and_deleted_together,
            associations_are_versioned_and_compliance_follows_the_resources,
            inventory_deltas_apply_against_their_base_and_report_changes,
            alarm_states_change_once_and_their_history_is_an_outbox,
            metric_batches_are_stored_once_with_rollups_and_pruned_in_steps,
            concurrent_metric_writers_store_every_point_once,
            log_batches_are_stored_once_queried_by_filter_and_pruned,
            sessions_end_once_and_keep_their_recording_chunks_in_order,
            console_sessions_expire_and_sign_out_once,
            a_nodes_recent_invocations_come_newest_first,

            monitors_are_versioned_and_deleted);
    };
    (@tests $open:path; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let (_guard, store) = $open().await;
                crate::suite::$test(store).await;
            }
        )*
    };
}
pub(crate) use store_suite;

use std::collections::BTreeMap;

use operon_proto::{CommandResult, Inventory, InvocationStatus};

use crate::*;

fn token(uses_allowed: i64, expires_at: i64) -> EnrollToken {
    EnrollToken {
        id: "et-1".into(),
        token_hash: "hash-1".into(),
        tags: BTreeMap::from([("env".into(), "staging".into())]),
        uses_allowed,
        uses: 0,
        expires_at,
        created_at: 0,
        revoked_at: None,
    }
}

fn new_node(id: &str, name: &str) -> NewNode {
    NewNode {
        id: id.into(),
        name: name.into(),
        credential_hash: format!("cred-{id}"),
        requested_tags: BTreeMap::from([
            ("env".into(), "prod".into()),
            ("role".into(), "web".into()),
        ]),
        inventory: Inventory::default(),
    }
}

pub(crate) async fn enrollment_counts_uses_refuses_expired_and_token_tags_win(store: DynStore) {
    store.insert_enroll_token(&token(2, 1_000)).await.unwrap();
    let first = store
        .enroll_node("hash-1", 10, new_node("n-1", "web"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.tags["env"], "staging",
        "the token's tags override the node's"
    );
    assert_eq!(first.tags["role"], "web");
    let second = store
        .enroll_node("hash-1", 10, new_node("n-2", "web"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.name, "web-2", "names are made unique");
    let third = store
        .enroll_node("hash-1", 10, new_node("n-3", "x"))
        .await
        .unwrap();
    assert_eq!(third.unwrap_err(), EnrollRefusal::UsedUp);
    let unknown = store
        .enroll_node("nope", 10, new_node("n-4", "x"))
        .await
        .unwrap();
    assert_eq!(unknown.unwrap_err(), EnrollRefusal::Unknown);
    let mut later = token(5, 1_000);
    later.id = "et-2".into();
    later.token_hash = "hash-2".into();
    store.insert_enroll_token(&later).await.unwrap();
    let expired = store
        .enroll_node("hash-2", 1_000, new_node("n-5", "x"))
        .await
        .unwrap();
    assert_eq!(expired.unwrap_err(), EnrollRefusal::Expired);
    assert!(
        store.node("n-5").await.unwrap().is_none(),
        "a refused enrollment writes no node"
    );
}

pub(crate) async fn a_revoked_enrollment_token_enrolls_nothing(store: DynStore) {
    store
        .insert_enroll_token(&token(5, i64::MAX))
        .await
        .unwrap();
    store
        .enroll_node("hash-1", 10, new_node("n-1", "web"))
        .await
        .unwrap()
        .unwrap();
    let revoked = store
        .revoke_enroll_token("et-1", 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(20));
    assert_eq!(revoked.uses, 1);
    // Revoking again keeps the first time; an unknown id is None.
    let again = store
        .revoke_enroll_token("et-1", 30)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(20));
    assert!(
        store
            .revoke_enroll_token("et-9", 30)
            .await
            .unwrap()
            .is_none()
    );
    let refused = store
        .enroll_node("hash-1", 40, new_node("n-2", "db"))
        .await
        .unwrap();
    assert_eq!(refused.unwrap_err(), EnrollRefusal::Revoked);
    assert!(store.node("n-2").await.unwrap().is_none());
    let listed = store.list_enroll_tokens().await.unwrap();
    assert_eq!((listed[0].uses, listed[0].revoked_at), (1, Some(20)));
}

pub(crate) async fn token_tags_win_over_keys_differing_in_case_and_suffixed_names_stay_short(
    store: DynStore,
) {
    store
        .insert_enroll_token(&token(5, i64::MAX))
        .await
        .unwrap();
    let mut node = new_node("n-1", "web");
    node.requested_tags = BTreeMap::from([
        ("ENV".into(), "prod".into()),
        ("Env".into(), "prod".into()),
        ("role".into(), "web".into()),
    ]);
    let node = store
        .enroll_node("hash-1", 10, node)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        node.tags,
        BTreeMap::from([
            ("env".into(), "staging".into()),
            ("role".into(), "web".into())
        ]),
        "the token's env wins over ENV and Env"
    );
    let long = "a".repeat(crate::NODE_NAME_MAX);
    let first = store
        .enroll_node("hash-1", 10, new_node("n-2", &long))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.name, long);
    let second = store
        .enroll_node("hash-1", 10, new_node("n-3", &long))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.name.len(), crate::NODE_NAME_MAX);
    assert!(second.name.ends_with("a-2"), "{}", second.name);
}

fn command(id: &str) -> Command {
    Command {
        id: id.into(),
        document_name: "AWS-RunShellScript".into(),
        document_version: 1,
        parameters: serde_json::json!({"commands": ["true"]}),
        request: serde_json::json!({}),
        run_template: RunTemplate {
            steps: vec![],
            cwd: None,
            env: BTreeMap::new(),
            user: None,
            output_cap_bytes: 1024,
            parameters_as: None,
        },
        max_concurrency: "50".into(),
        max_errors: "0".into(),
        timeout_secs: 60,
        delivery_timeout_secs: 60,
        status: InvocationStatus::Pending,
        created_at: 1,
        finished_at: None,
        cancel_requested: false,
        requested_by: "admin".into(),
    }
}

pub(crate) async fn results_are_idempotent_the_first_final_result_wins(store: DynStore) {
    let targets = vec![("n-1".to_string(), "web".to_string())];
    store
        .insert_command(&command("c-1"), &targets)
        .await
        .unwrap();
    let node = vec!["n-1".to_string()];
    assert_eq!(
        store.mark_dispatched_many("c-1", &node, 5).await.unwrap(),
        node
    );
    assert!(
        store
            .mark_dispatched_many("c-1", &node, 6)
            .await
            .unwrap()
            .is_empty(),
        "dispatch happens once"
    );
    assert_eq!(
        store.command("c-1").await.unwrap().unwrap().status,
        InvocationStatus::InProgress
    );
    let mut result = CommandResult {
        invocation_id: invocation_id("c-1", "n-1"),
        status: InvocationStatus::Success,
        exit_code: Some(0),
        stdout: "hello\n".into(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        started_at: Some(6),
        finished_at: 7,
        detail: None,
        steps: vec![],
        resources: Vec::new(),
    };
    assert!(store.record_result("c-1", "n-1", &result).await.unwrap());
    result.status = InvocationStatus::Failed;
    assert!(!store.record_result("c-1", "n-1", &result).await.unwrap());
    let inv = &store.invocations("c-1").await.unwrap()[0];
    assert_eq!(inv.status, InvocationStatus::Success);
    assert_eq!(inv.stdout, "hello\n");
    assert_eq!(inv.invocation_id(), "c-1.n-1");
    assert_eq!(
        split_invocation_id(&inv.invocation_id()),
        Some(("c-1", "n-1"))
    );
}

pub(crate) async fn a_user_and_its_roles_are_written_together(store: DynStore) {
    store.create_role("ops", "", 1).await.unwrap();
    let user = |id: &str| User {
        id: id.into(),
        name: "alice".into(),
        kind: "user".into(),
        created_at: 1,
        disabled_at: None,
    };
    store
        .insert_user(&user("u-1"), &["ops".to_string()])
        .await
        .unwrap();
    assert_eq!(store.user_roles("u-1").await.unwrap(), ["ops"]);
    // A taken name writes nothing, not even the roles.
    let taken = store.insert_user(&user("u-2"), &["ops".to_string()]).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert!(store.user_roles("u-2").await.unwrap().is_empty());
    assert_eq!(store.list_users().await.unwrap().len(), 1);
}

pub(crate) async fn documents_are_versioned(store: DynStore) {
    let v1 = store
        .put_document("d", &serde_json::json!({"v": 1}), 1)
        .await
        .unwrap();
    let v2 = store
        .put_document("d", &serde_json::json!({"v": 2}), 2)
        .await
        .unwrap();
    assert_eq!((v1, v2), (1, 2));
    assert_eq!(
        store.document("d", None).await.unwrap().unwrap().content["v"],
        1,
        "without a version, the default (the first) is read"
    );
    assert_eq!(
        store.document("d", Some(2)).await.unwrap().unwrap().content["v"],
        2
    );
    assert!(store.document("d", Some(3)).await.unwrap().is_none());
    assert!(store.document("nope", None).await.unwrap().is_none());
    let listed = store.list_documents().await.unwrap();
    assert_eq!(
        listed,
        [DocumentVersions {
            name: "d".into(),
            default_version: 1,
            latest_version: 2,
            created_at: 2,
        }]
    );
}

/// The default version moves only when it is set, to a version that
/// exists; a later version does not move it back.
pub(crate) async fn a_document_default_version_moves_only_when_set(store: DynStore) {
    for v in 1..=3 {
        store
            .put_document("d", &serde_json::json!({"v": v}), v)
            .await
            .unwrap();
    }
    store
        .put_document("other", &serde_json::json!({"v": 1}), 9)
        .await
        .unwrap();
    let versions = |name: &'static str| {
        let store = store.clone();
        async move {
            let v = store.document_versions(name).await.unwrap().unwrap();
            (v.default_version, v.latest_version)
        }
    };
    assert_eq!(versions("d").await, (1, 3));
    assert_eq!(
        store.set_default_document_version("d", 4).await.unwrap(),
        None,
        "no such version: nothing changes"
    );
    assert_eq!(
        store.set_default_document_version("nope", 1).await.unwrap(),
        None
    );
    assert_eq!(versions("d").await, (1, 3));
    assert_eq!(
        store.set_default_document_version("d", 3).await.unwrap(),
        Some(1),
        "the previous default is returned"
    );
    assert_eq!(versions("d").await, (3, 3));
    assert_eq!(
        store.document("d", None).await.unwrap().unwrap().content["v"],
        3
    );
    store
        .put_document("d", &serde_json::json!({"v": 4}), 4)
        .await
        .unwrap();
    assert_eq!(
        versions("d").await,
        (3, 4),
        "a new version is not the default"
    );
    assert_eq!(
        store.set_default_document_version("d", 2).await.unwrap(),
        Some(3)
    );
    assert_eq!(
        store.document("d", None).await.unwrap().unwrap().content["v"],
        2,
        "an older version can be the default again"
    );
    assert_eq!(
        versions("other").await,
        (1, 1),
        "other documents are untouched"
    );
    assert!(store.document_versions("nope").await.unwrap().is_none());
}

/// Versions are read and written in one write transaction: concurrent
/// writers of one name each get their own version, and none fails with a
/// lock error (a deferred read-then-write transaction did, under load).
pub(crate) async fn concurrent_document_writes_get_distinct_versions(store: DynStore) {
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .put_document("shared", &serde_json::json!({"writer": i}), i)
                    .await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for writer in writers {
        versions.push(
            writer
                .await
                .unwrap()
                .expect("no database error under contention"),
        );
    }
    versions.sort();
    assert_eq!(versions, (1..=16).collect::<Vec<i64>>());
}

pub(crate) async fn concurrent_enrollments_never_exceed_uses_or_fail_with_locks(store: DynStore) {
    store
        .insert_enroll_token(&token(10, i64::MAX))
        .await
        .unwrap();
    // Every node asks for the same name: names must still come out unique.
    let attempts: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .enroll_node("hash-1", 1, new_node(&format!("n-{i}"), "n"))
                    .await
            })
        })
        .collect();
    let mut enrolled = Vec::new();
    for attempt in attempts {
        match attempt
            .await
            .unwrap()
            .expect("no database error under contention")
        {
            Ok(node) => enrolled.push(node.name),
            Err(refusal) => assert_eq!(refusal, EnrollRefusal::UsedUp),
        }
    }
    assert_eq!(enrolled.len(), 10);
    let names: std::collections::BTreeSet<&String> = enrolled.iter().collect();
    assert_eq!(names.len(), 10, "unique names: {enrolled:?}");
    assert_eq!(store.list_nodes().await.unwrap().len(), 10);
    assert_eq!(store.list_enroll_tokens().await.unwrap()[0].uses, 10);
}

pub(crate) async fn concurrent_event_batches_get_unique_gap_free_sequence_numbers(store: DynStore) {
    let writers: Vec<_> = (0..24)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let batch: Vec<NewEvent> = (0..=(w % 5))
                    .map(|i| event_with(&format!("w{w}-{i}"), &[]))
                    .collect();
                let seqs = store.put_events(&batch).await?;
                Ok::<_, StoreError>((batch.len(), seqs))
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut expected = 0;
    for writer in writers {
        let (len, seqs) = writer.await.unwrap().expect("no database error");
        assert_eq!(seqs.len(), len);
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "a batch is numbered consecutively: {seqs:?}"
        );
        expected += len as i64;
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=expected).collect::<Vec<_>>());
    let stored = store
        .events_between("default", 0, i64::MAX, 0, 10_000)
        .await
        .unwrap();
    assert_eq!(stored.len() as i64, expected);
}

fn audit_entry(actor: &str) -> AuditEntry {
    AuditEntry {
        actor: actor.into(),
        action: "nodes:Tag".into(),
        resource: "node/n-1".into(),
        outcome: "allowed".into(),
        detail: serde_json::json!({"by": actor}),
    }
}

pub(crate) async fn concurrent_audit_appends_form_one_chain(store: DynStore) {
    // The audit writer and the event writer both append; here both kinds
    // run at once.
    let appenders: Vec<_> = (0..30)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let entries: Vec<AuditEntry> = (0..=(i % 3))
                    .map(|j| audit_entry(&format!("a{i}-{j}")))
                    .collect();
                let head = if i % 2 == 0 {
                    store.append_audit(&entries, i).await?
                } else {
                    let event = event_with(&format!("e{i}"), &[]);
                    store.put_events_audited(&[event], &entries, i).await?.1
                };
                Ok::<_, StoreError>((entries.len() as i64, head))
            })
        })
        .collect();
    let mut total = 0;
    let mut heads = Vec::new();
    for appender in appenders {
        let (n, head) = appender.await.unwrap().expect("no database error");
        total += n;
        heads.push(head.expect("entries were written"));
    }
    let chain = store.audit_chain().await.unwrap();
    assert_eq!(chain.len() as i64, total);
    assert_eq!(verify_chain(&chain), vec![], "one unbroken chain");
    // Each call's head is the record it wrote last, and the head it
    // extended is the record just before its first.
    for head in &heads {
        assert_eq!(chain[(head.seq - 1) as usize].hash, head.hash);
        let first = &chain[head.prev_seq as usize];
        assert_eq!(first.prev_hash, head.prev_hash);
        if head.prev_seq > 0 {
            assert_eq!(chain[(head.prev_seq - 1) as usize].hash, head.prev_hash);
        }
    }
    let last = heads.iter().max_by_key(|h| h.seq).unwrap();
    assert_eq!(last.seq, total);
    assert_eq!(
        store.audit_last().await.unwrap(),
        Some((last.seq, last.hash.clone()))
    );
    assert_eq!(
        store.audit_hash_at(2).await.unwrap().as_deref(),
        Some(chain[1].hash.as_str())
    );
    assert_eq!(store.audit_hash_at(total + 1).await.unwrap(), None);
}

pub(crate) async fn batched_agent_writes_and_dispatches_are_idempotent(store: DynStore) {
    let targets: Vec<(String, String)> = (0..3)
        .map(|i| (format!("n-{i}"), format!("node-{i}")))
        .collect();
    store
        .insert_command(&command("c-1"), &targets)
        .await
        .unwrap();
    let ids: Vec<String> = targets.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        store
            .mark_dispatched_many("c-1", &ids[..2], 5)
            .await
            .unwrap(),
        ids[..2].to_vec()
    );
    assert_eq!(
        store.mark_dispatched_many("c-1", &ids, 6).await.unwrap(),
        vec!["n-2".to_string()]
    );
    let result = |node: &str, status| CommandResult {
        invocation_id: invocation_id("c-1", node),
        status,
        exit_code: Some(0),
        stdout: format!("{node}\n"),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        started_at: None,
        finished_at: 9,
        detail: None,
        steps: vec![],
        resources: Vec::new(),
    };
    let writes = vec![
        AgentWrite::Started {
            command_id: "c-1".into(),
            node_id: "n-0".into(),
            at: 7,
        },
        AgentWrite::Finished {
            command_id: "c-1".into(),
            node_id: "n-0".into(),
            result: result("n-0", InvocationStatus::Success),
        },
        AgentWrite::Finished {
            command_id: "c-1".into(),
            node_id: "n-0".into(),
            result: result("n-0", InvocationStatus::Failed),
        },
        AgentWrite::Finished {
            command_id: "c-1".into(),
            node_id: "n-1".into(),
            result: result("n-1", InvocationStatus::Failed),
        },
    ];
    assert_eq!(
        store.apply_agent_writes(&writes).await.unwrap(),
        vec![true, true, false, true]
    );
    let invocations = store.invocations("c-1").await.unwrap();
    assert_eq!(
        invocations[0].status,
        InvocationStatus::Success,
        "the first final result wins"
    );
    assert_eq!(invocations[0].started_at, Some(7));
    assert_eq!(invocations[1].status, InvocationStatus::Failed);
    assert_eq!(invocations[2].status, InvocationStatus::InProgress);
}

fn step(id: &str, status: &str, insert: bool) -> StepWrite {
    StepWrite {
        audit: Vec::new(),
        execution: ExecutionRecord {
            id: id.into(),
            workflow: "deploy".into(),
            version: 1,
            name: format!("name-{id}"),
            status: status.into(),
            input: serde_json::json!({"a": 1}),
            output: None,
            error: None,
            cause: None,
            parent_token: None,
            started_by: "admin".into(),
            started_at: 1,
            stopped_at: None,
            updated_at: 1,
            redrive_count: 0,
            causation: Vec::new(),
        },
        insert,
        engine: "{}".into(),
        history: vec![],
        timers_add: vec![],
        timers_remove: vec![],
        tasks_add: vec![],
        tasks_remove: vec![],
        approvals_add: vec![],
        approval_decisions: vec![],
    }
}

pub(crate) async fn workflow_versions_steps_and_cleanup_on_finish(store: DynStore) {
    let def = serde_json::json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}});
    assert_eq!(
        store
            .put_workflow("deploy", &def, None, "admin", 1, true)
            .await
            .unwrap(),
        Ok(1)
    );
    assert!(
        store
            .put_workflow("deploy", &def, None, "admin", 2, true)
            .await
            .unwrap()
            .is_err()
    );
    assert_eq!(
        store
            .put_workflow("deploy", &def, Some("deployer"), "alice", 3, false)
            .await
            .unwrap(),
        Ok(2)
    );
    assert!(
        store
            .put_workflow("other", &def, None, "admin", 3, false)
            .await
            .unwrap()
            .is_err()
    );
    let latest = store.workflow("deploy").await.unwrap().unwrap();
    assert_eq!(latest.version, 2);
    assert_eq!(
        (latest.role.as_deref(), latest.created_by.as_str()),
        (Some("deployer"), "alice")
    );
    let first_version = store.workflow_run_as("deploy", 1).await.unwrap().unwrap();
    assert_eq!(
        (first_version.role, first_version.created_by.as_str()),
        (None, "admin")
    );
    assert!(store.workflow_run_as("deploy", 9).await.unwrap().is_none());
    let versions = store.workflow_versions("deploy").await.unwrap();
    assert_eq!(
        versions,
        vec![
            crate::WorkflowVersionInfo {
                version: 2,
                created_at: 3,
                created_by: "alice".into(),
                role: Some("deployer".into()),
            },
            crate::WorkflowVersionInfo {
                version: 1,
                created_at: 1,
                created_by: "admin".into(),
                role: None,
            },
        ],
        "newest first"
    );
    assert!(store.workflow_versions("other").await.unwrap().is_empty());

    let mut first = step("x-1", "RUNNING", true);
    first.history.push(HistoryRow {
        seq: 1,
        timestamp: 5,
        event: "{\"type\":\"ExecutionStarted\"}".into(),
    });
    first.timers_add.push((1, 1000));
    first.execution.causation = vec!["restart".into(), "restart".into()];
    first.tasks_add.push(WorkflowTask {
        token: "tok-1".into(),
        execution_id: "x-1".into(),
        state: "Approve".into(),
        resource: "operon:approval".into(),
        input: serde_json::json!({}),
        idempotency_key: "tok-1".into(),
        created_at: 5,
    });
    first.approvals_add.push(Approval {
        id: "ap-1".into(),
        execution_id: "x-1".into(),
        token: "tok-1".into(),
        state: "Approve".into(),
        message: "ok?".into(),
        approvers: vec!["admin".into()],
        status: "Pending".into(),
        decided_by: None,
        comment: None,
        created_at: 5,
        decided_at: None,
    });
    store.apply_workflow_steps(&[first]).await.unwrap();
    let stored = store.execution("x-1").await.unwrap().unwrap();
    assert_eq!(stored.causation, ["restart", "restart"]);
    assert_eq!(store.workflow_timers().await.unwrap().len(), 1);
    assert_eq!(store.workflow_tasks().await.unwrap().len(), 1);
    assert!(
        store.delete_workflow("deploy", 9).await.unwrap().is_err(),
        "running executions block delete"
    );

    // A batch with a duplicate insert fails as a whole: nothing of it is kept.
    let err = store
        .apply_workflow_steps(&[step("x-2", "RUNNING", true), step("x-1", "RUNNING", true)])
        .await;
    assert!(err.is_err());
    assert!(store.execution("x-2").await.unwrap().is_none());

    let mut done = step("x-1", "FAILED", false);
    done.execution.error = Some("Boom".into());
    store.apply_workflow_steps(&[done]).await.unwrap();
    assert!(store.workflow_timers().await.unwrap().is_empty());
    assert!(store.workflow_tasks().await.unwrap().is_empty());
    assert_eq!(
        store.approval("ap-1").await.unwrap().unwrap().status,
        "Expired"
    );
    let (record, engine) = store.execution_engine("x-1").await.unwrap().unwrap();
    assert_eq!((record.status.as_str(), engine.as_str()), ("FAILED", "{}"));
    assert_eq!(
        store.execution_history("x-1", 0, 10).await.unwrap().len(),
        1
    );
    assert_eq!(store.delete_workflow("deploy", 9).await.unwrap(), Ok(()));
    assert!(store.workflow("deploy").await.unwrap().is_none());
    assert!(
        store
            .workflow_definition("deploy", 1)
            .await
            .unwrap()
            .is_some()
    );
}

fn event_with(id: &str, deliveries: &[&str]) -> NewEvent {
    NewEvent {
        id: id.into(),
        bus: "default".into(),
        body: format!(r#"{{"id":"{id}"}}"#),
        ingested_at: 100,
        deliveries: deliveries
            .iter()
            .map(|d| NewDelivery {
                id: d.to_string(),
                rule: "r1".into(),
                target_id: "t1".into(),
            })
            .collect(),
    }
}

pub(crate) async fn outbox_claims_retries_dead_letters_and_redrives_with_the_same_id(
    store: DynStore,
) {
    let seqs = store
        .put_events(&[event_with("e1", &["d1", "d2"]), event_with("e2", &[])])
        .await
        .unwrap();
    assert_eq!(seqs.len(), 2);
    assert!(
        store
            .claim_due_deliveries("p-1", 99, 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = store
        .claim_due_deliveries("p-1", 100, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].event.id, "e1");
    // Claimed rows are not handed out twice, until the claims are released.
    assert!(
        store
            .claim_due_deliveries("p-1", 200, 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.release_delivery_claims().await.unwrap(), 2);
    assert_eq!(
        store
            .claim_due_deliveries("p-1", 200, 60_000, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    store
        .apply_delivery_outcomes(
            "p-1",
            &[
                DeliveryOutcome::Delivered { id: "d1".into() },
                DeliveryOutcome::Retry {
                    id: "d2".into(),
                    attempts: 1,
                    next_attempt_at: 500,
                    error: "HTTP 500".into(),
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(store.count_pending_deliveries().await.unwrap(), 1);
    assert_eq!(store.next_delivery_due().await.unwrap(), Some(500));
    let again = store
        .claim_due_deliveries("p-1", 500, 60_000, 10)
        .await
        .unwrap();
    assert_eq!((again[0].id.as_str(), again[0].attempts), ("d2", 1));
    store
        .apply_delivery_outcomes(
            "p-1",
            &[DeliveryOutcome::Dead {
                id: "d2".into(),
                attempts: 2,
                error: "HTTP 500".into(),
                at: 600,
            }],
        )
        .await
        .unwrap();
    assert_eq!(store.count_pending_deliveries().await.unwrap(), 0);
    let dead = store.list_dead_letters(None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].attempts, dead[0].event.id.as_str()), (2, "e1"));
    let redriven = store
        .redrive_dead_letters(&["d2".into(), "nope".into()], 700)
        .await
        .unwrap();
    assert_eq!(redriven, vec!["d2".to_string()]);
    assert!(store.list_dead_letters(None, 10).await.unwrap().is_empty());
    let back = store
        .claim_due_deliveries("p-1", 700, 60_000, 10)
        .await
        .unwrap();
    assert_eq!((back[0].id.as_str(), back[0].attempts), ("d2", 0));
}

pub(crate) async fn buses_rules_and_refusing_to_delete_a_used_bus(store: DynStore) {
    assert!(!store.create_bus("default", 1).await.unwrap());
    assert!(store.create_bus("ops", 1).await.unwrap());
    let rule = Rule {
        name: "r".into(),
        bus: "ops".into(),
        description: None,
        pattern: Some(r#"{"source":["a"]}"#.into()),
        schedule: None,
        timezone: None,
        enabled: true,
        targets: serde_json::json!([{"id": "t1"}]),
        created_at: 1,
        updated_at: 1,
        last_fired_at: None,
        author: Some("alice".into()),
    };
    store.put_rule(&rule).await.unwrap();
    assert!(matches!(
        store.delete_bus("ops").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.set_rule_enabled("r", false, 2).await.unwrap());
    let stored = store.rule("r").await.unwrap().unwrap();
    assert!(!stored.enabled);
    assert_eq!(stored.author.as_deref(), Some("alice"));
    assert!(store.delete_rule("r").await.unwrap());
    assert!(store.delete_bus("ops").await.unwrap());
    assert_eq!(store.list_buses().await.unwrap().len(), 1);
}

pub(crate) async fn event_sequence_numbers_are_never_reused_after_pruning(store: DynStore) {
    let first = store
        .put_events(&[event_with("a", &[]), event_with("b", &["d1"])])
        .await
        .unwrap();
    assert_eq!(first, vec![1, 2]);
    // "b" is kept: a delivery still needs it.
    assert_eq!(store.prune_events("default", 1_000).await.unwrap(), 1);
    store
        .apply_delivery_outcomes("p-1", &[DeliveryOutcome::Delivered { id: "d1".into() }])
        .await
        .unwrap();
    assert_eq!(store.prune_events("default", 1_000).await.unwrap(), 1);
    let next = store.put_events(&[event_with("c", &[])]).await.unwrap();
    assert_eq!(next, vec![3]);
    let many: Vec<NewEvent> = (0..450)
        .map(|i| event_with(&format!("e{i}"), &[]))
        .collect();
    let seqs = store.put_events(&many).await.unwrap();
    assert_eq!((seqs[0], seqs[449]), (4, 453));
    let between = store
        .events_between("default", 0, i64::MAX, 0, 1000)
        .await
        .unwrap();
    assert_eq!(between.len(), 451);
}

/// A node enrolled with a fresh one-use token, credential hash "old".
async fn enroll_one(store: &DynStore) -> Node {
    let token = EnrollToken {
        id: "et-1".into(),
        token_hash: "token-hash".into(),
        tags: BTreeMap::new(),
        uses_allowed: 1,
        uses: 0,
        expires_at: i64::MAX,
        created_at: 0,
        revoked_at: None,
    };
    store.insert_enroll_token(&token).await.unwrap();
    let new = NewNode {
        id: "n-1".into(),
        name: "web-1".into(),
        credential_hash: "old".into(),
        requested_tags: BTreeMap::new(),
        inventory: Default::default(),
    };
    store
        .enroll_node("token-hash", 1, new)
        .await
        .unwrap()
        .unwrap()
}

fn kind(found: Option<CredentialMatch>) -> String {
    match found {
        None => "unknown".into(),
        Some(CredentialMatch::Current(n)) => format!("current {}", n.id),
        Some(CredentialMatch::Pending { node, rotation_id }) => {
            format!("pending {} {rotation_id}", node.id)
        }
        Some(CredentialMatch::Retired { node, retired_at }) => {
            format!("retired {} {retired_at}", node.id)
        }
    }
}

pub(crate) async fn both_credentials_work_until_the_rotation_completes_then_only_the_new_one(
    store: DynStore,
) {
    let node = enroll_one(&store).await;
    store
        .begin_credential_rotation(&node.id, "rot-1", "new", 10)
        .await
        .unwrap();
    assert_eq!(
        kind(store.find_node_credential("old").await.unwrap()),
        "current n-1"
    );
    assert_eq!(
        kind(store.find_node_credential("new").await.unwrap()),
        "pending n-1 rot-1"
    );
    assert_eq!(store.credential_rotated_at(&node.id).await.unwrap(), None);

    assert!(
        store
            .complete_credential_rotation(&node.id, "rot-1", 20)
            .await
            .unwrap()
    );
    assert_eq!(
        kind(store.find_node_credential("new").await.unwrap()),
        "current n-1"
    );
    assert_eq!(
        kind(store.find_node_credential("old").await.unwrap()),
        "retired n-1 20"
    );
    assert_eq!(
        store.credential_rotated_at(&node.id).await.unwrap(),
        Some(20)
    );
    // Completing twice (ack after a reconnect already completed it) is a no-op.
    assert!(
        !store
            .complete_credential_rotation(&node.id, "rot-1", 30)
            .await
            .unwrap()
    );
    assert_eq!(
        kind(store.find_node_credential("new").await.unwrap()),
        "current n-1"
    );
    assert_eq!(
        kind(store.find_node_credential("nope").await.unwrap()),
        "unknown"
    );
}

pub(crate) async fn an_unconfirmed_rotation_is_retired_when_another_one_completes(store: DynStore) {
    let node = enroll_one(&store).await;
    store
        .begin_credential_rotation(&node.id, "rot-1", "lost", 10)
        .await
        .unwrap();
    store
        .begin_credential_rotation(&node.id, "rot-2", "kept", 11)
        .await
        .unwrap();
    assert!(
        store
            .complete_credential_rotation(&node.id, "rot-2", 12)
            .await
            .unwrap()
    );
    assert_eq!(
        kind(store.find_node_credential("kept").await.unwrap()),
        "current n-1"
    );
    assert_eq!(
        kind(store.find_node_credential("lost").await.unwrap()),
        "retired n-1 12"
    );
    assert_eq!(
        kind(store.find_node_credential("old").await.unwrap()),
        "retired n-1 12"
    );
    assert!(
        !store
            .complete_credential_rotation(&node.id, "rot-1", 13)
            .await
            .unwrap()
    );
}

pub(crate) async fn claims_have_an_owner_and_expire(store: DynStore) {
    store
        .put_events(&[event_with("e", &["d1", "d2"])])
        .await
        .unwrap();
    let mine = store
        .claim_due_deliveries("p-1", 100, 1_000, 10)
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);
    // Nobody else gets them while the claims hold.
    assert!(
        store
            .claim_due_deliveries("p-2", 500, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.release_expired_delivery_claims(1_099).await.unwrap(),
        0
    );
    // p-1 hung: its claims expire and p-2 takes the deliveries over.
    assert_eq!(
        store.release_expired_delivery_claims(1_100).await.unwrap(),
        2
    );
    let theirs = store
        .claim_due_deliveries("p-2", 1_100, 1_000, 10)
        .await
        .unwrap();
    assert_eq!(theirs.len(), 2);
    // p-1's late outcomes do not undo p-2's claims; a success still counts.
    store
        .apply_delivery_outcomes(
            "p-1",
            &[
                DeliveryOutcome::Retry {
                    id: "d1".into(),
                    attempts: 1,
                    next_attempt_at: 1_200,
                    error: "late".into(),
                },
                DeliveryOutcome::Dead {
                    id: "d2".into(),
                    attempts: 9,
                    error: "late".into(),
                    at: 1_200,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(store.count_pending_deliveries().await.unwrap(), 2);
    assert!(store.list_dead_letters(None, 10).await.unwrap().is_empty());
    assert!(
        store
            .claim_due_deliveries("p-3", 1_300, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .apply_delivery_outcomes("p-1", &[DeliveryOutcome::Delivered { id: "d1".into() }])
        .await
        .unwrap();
    store
        .apply_delivery_outcomes(
            "p-2",
            &[DeliveryOutcome::Dead {
                id: "d2".into(),
                attempts: 1,
                error: "HTTP 410".into(),
                at: 1_300,
            }],
        )
        .await
        .unwrap();
    assert_eq!(store.count_pending_deliveries().await.unwrap(), 0);
    assert_eq!(store.list_dead_letters(None, 10).await.unwrap().len(), 1);
}

pub(crate) async fn concurrent_claims_hand_out_each_delivery_once(store: DynStore) {
    let ids: Vec<String> = (0..300).map(|i| format!("d{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    store.put_events(&[event_with("e", &refs)]).await.unwrap();
    let claimers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store.claim_due_deliveries("p-1", 1_000, 60_000, 16).await?;
                    if batch.is_empty() {
                        return Ok::<_, StoreError>(mine);
                    }
                    mine.extend(batch.into_iter().map(|d| d.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap().expect("no database error"));
    }
    all.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(all, expected, "every delivery claimed exactly once");
}

fn param_version(name: &str, value: &str, at: i64) -> NewParameterVersion {
    NewParameterVersion {
        name: name.into(),
        param_type: "String".into(),
        value: Some(value.into()),
        sealed: None,
        key_id: None,
        description: Some("d".into()),
        allowed_pattern: None,
        tier: "Standard".into(),
        data_type: "text".into(),
        policies: None,
        modified_at: at,
        modified_by: "alice".into(),
    }
}

pub(crate) async fn parameters_are_versioned_labelled_trimmed_and_deleted(store: DynStore) {
    let tags = Tags::from([("env".to_string(), "prod".to_string())]);
    let put = |v, expect| {
        let store = store.clone();
        let tags = tags.clone();
        async move { store.put_parameter(&v, expect, &tags).await.unwrap() }
    };
    assert_eq!(put(param_version("/a/b", "1", 1), None).await, Ok(1));
    assert_eq!(
        put(param_version("/a/b", "x", 2), None).await,
        Err(PutRefusal::AlreadyExists)
    );
    assert_eq!(
        put(param_version("/a/b", "x", 2), Some(7)).await,
        Err(PutRefusal::Moved)
    );
    assert_eq!(put(param_version("/a/b", "2", 2), Some(1)).await, Ok(2));
    assert_eq!(put(param_version("/a/bc", "z", 2), None).await, Ok(1));
    assert_eq!(put(param_version("/a_c", "z", 2), None).await, Ok(1));
    let latest = store.parameter("/a/b").await.unwrap().unwrap();
    assert_eq!(
        (latest.version, latest.fields.value.as_deref()),
        (2, Some("2"))
    );

    // Labels move between versions; a version holds at most ten.
    let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    store
        .label_parameter("/a/b", 1, &labels(&["prod", "old"]))
        .await
        .unwrap()
        .unwrap();
    store
        .label_parameter("/a/b", 2, &labels(&["prod"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .parameter_by_label("/a/b", "prod")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        store
            .parameter_version("/a/b", 1)
            .await
            .unwrap()
            .unwrap()
            .labels,
        ["old"]
    );
    assert_eq!(
        store
            .label_parameter("/a/b", 9, &labels(&["x"]))
            .await
            .unwrap(),
        Err(LabelRefusal::VersionNotFound)
    );
    assert_eq!(
        store
            .label_parameter("/nope", 1, &labels(&["x"]))
            .await
            .unwrap(),
        Err(LabelRefusal::ParameterNotFound)
    );
    let eleven: Vec<String> = (0..11).map(|i| format!("l{i}")).collect();
    assert_eq!(
        store.label_parameter("/a/b", 2, &eleven).await.unwrap(),
        Err(LabelRefusal::LabelLimitExceeded)
    );
    assert_eq!(
        store.parameter("/a/b").await.unwrap().unwrap().labels,
        ["prod"],
        "rolled back"
    );
    assert_eq!(
        store
            .unlabel_parameter("/a/b", 1, &labels(&["old", "prod"]))
            .await
            .unwrap(),
        Ok(labels(&["old"]))
    );
    store
        .label_parameter("/a/b", 1, &labels(&["keep"]))
        .await
        .unwrap()
        .unwrap();

    // A prefix is a prefix: `_` is not a wildcard.
    let under: Vec<String> = store
        .parameters_after("/a/", None, 10)
        .await
        .unwrap()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    assert_eq!(under, ["/a/b", "/a/bc"]);
    let page = store.parameters_after("/a", Some("/a/b"), 1).await.unwrap();
    assert_eq!(page[0].name(), "/a/bc");

    // The 101st version drops the oldest unlabelled one (3), not the
    // labelled 1 (`keep`) and 2 (`prod`).
    for version in 3..=101 {
        let v = param_version("/a/b", &version.to_string(), version);
        assert_eq!(put(v, Some(version - 1)).await, Ok(version));
    }
    let history = store.parameter_history("/a/b").await.unwrap();
    assert_eq!(history.len(), 100);
    let first: Vec<i64> = history[..3].iter().map(|v| v.version).collect();
    assert_eq!(first, [1, 2, 4]);

    assert_eq!(
        store.parameter_tags("/a/b").await.unwrap(),
        Some(tags.clone())
    );
    assert!(
        store
            .tag_parameter(
                "/a/b",
                &Tags::from([("team".into(), "x".into())]),
                &["env".into()]
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .parameter_tags("/a/b")
            .await
            .unwrap()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["team"]
    );
    assert!(
        !store
            .tag_parameter("/nope", &Tags::new(), &[])
            .await
            .unwrap()
    );

    let deleted = store.delete_parameter("/a/b").await.unwrap().unwrap();
    assert_eq!(deleted.version, 101);
    assert_eq!(store.delete_parameter("/a/b").await.unwrap(), None);
    assert!(store.parameter_history("/a/b").await.unwrap().is_empty());
    assert_eq!(store.parameter_tags("/a/b").await.unwrap(), None);
    // Created again, it starts over at 1.
    assert_eq!(put(param_version("/a/b", "new", 5), None).await, Ok(1));
    assert!(
        store
            .parameter_by_label("/a/b", "keep")
            .await
            .unwrap()
            .is_none()
    );
}

pub(crate) async fn concurrent_parameter_puts_get_distinct_versions_or_move(store: DynStore) {
    store
        .put_parameter(&param_version("/c", "0", 0), None, &Tags::new())
        .await
        .unwrap()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Each writer retries from what it reads, like the service.
            loop {
                let latest = store.parameter("/c").await.unwrap().unwrap().version;
                match store
                    .put_parameter(
                        &param_version("/c", &i.to_string(), 1),
                        Some(latest),
                        &Tags::new(),
                    )
                    .await
                    .unwrap()
                {
                    Ok(v) => return v,
                    Err(PutRefusal::Moved) => continue,
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort();
    assert_eq!(versions, (2..=17).collect::<Vec<i64>>());
}

pub(crate) async fn sealed_parameters_and_access_keys_are_resealed_only_from_what_was_read(
    store: DynStore,
) {
    for name in ["/s/1", "/s/2"] {
        let mut v = param_version(name, "", 1);
        v.param_type = "SecureString".into();
        v.value = None;
        v.sealed = Some(b"old".to_vec());
        store
            .put_parameter(&v, None, &Tags::new())
            .await
            .unwrap()
            .unwrap();
    }
    store
        .put_parameter(&param_version("/s/plain", "p", 1), None, &Tags::new())
        .await
        .unwrap()
        .unwrap();
    let first = store.sealed_parameter_versions(None, 1).await.unwrap();
    assert_eq!(first, [("/s/1".to_string(), 1, b"old".to_vec())]);
    let rest = store
        .sealed_parameter_versions(Some(("/s/1", 1)), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert!(
        store
            .reseal_parameter_version("/s/1", 1, b"old", b"new")
            .await
            .unwrap()
    );
    assert!(
        !store
            .reseal_parameter_version("/s/1", 1, b"old", b"newer")
            .await
            .unwrap()
    );
    let sealed = store
        .parameter("/s/1")
        .await
        .unwrap()
        .unwrap()
        .fields
        .sealed;
    assert_eq!(sealed.as_deref(), Some(&b"new"[..]));

    let user = User {
        id: "u-k".into(),
        name: "keyholder".into(),
        kind: "service".into(),
        created_at: 1,
        disabled_at: None,
    };
    store.insert_user(&user, &[]).await.unwrap();
    let key = AccessKey {
        id: "AKIATEST".into(),
        user_id: "u-k".into(),
        sealed_secret: b"s1".to_vec(),
        created_at: 1,
        revoked_at: None,
        last_used_at: None,
    };
    store.insert_access_key(&key).await.unwrap();
    assert_eq!(
        store.access_key("AKIATEST").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.list_access_keys(Some("u-k")).await.unwrap().len(), 1);
    assert!(
        store
            .list_access_keys(Some("u-other"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .reseal_access_key("AKIATEST", b"s1", b"s2")
            .await
            .unwrap()
    );
    assert!(
        !store
            .reseal_access_key("AKIATEST", b"s1", b"s3")
            .await
            .unwrap()
    );
    assert!(store.revoke_access_key("AKIATEST", 5).await.unwrap());
    assert!(store.revoke_access_key("AKIATEST", 9).await.unwrap());
    assert_eq!(
        store
            .access_key("AKIATEST")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(5)
    );
    assert!(!store.revoke_access_key("AKIANONE", 9).await.unwrap());
}

pub(crate) async fn syncs_and_their_node_states_are_kept_and_deleted_together(store: DynStore) {
    let mut sync = ParamSync {
        name: "app-env".into(),
        path: "/app/prod/".into(),
        recursive: false,
        targets: serde_json::json!(["tag:env=prod"]),
        file: "/etc/app/env".into(),
        format: "dotenv".into(),
        mode: 0o600,
        owner: Some("app".into()),
        group: None,
        on_change: Some("systemctl restart app".into()),
        role: None,
        author: "alice".into(),
        created_at: 1,
        updated_at: 1,
    };
    assert!(store.put_param_sync(&sync).await.unwrap());
    sync.file = "/etc/app/env2".into();
    sync.updated_at = 2;
    assert!(!store.put_param_sync(&sync).await.unwrap(), "replaced");
    assert_eq!(
        store.param_sync("app-env").await.unwrap(),
        Some(sync.clone())
    );
    let mut node = ParamSyncNode {
        sync_name: "app-env".into(),
        node_id: "n-1".into(),
        node_name: "web-1".into(),
        status: "sent".into(),
        detail: None,
        version_set: Some("/app/prod/a:1".into()),
        sent_digest: Some("d1".into()),
        sent_at: Some(3),
        applied_digest: None,
        applied_at: None,
        on_change_exit: None,
    };
    store
        .put_param_sync_nodes(std::slice::from_ref(&node))
        .await
        .unwrap();
    node.status = "applied".into();
    node.applied_digest = Some("d1".into());
    node.on_change_exit = Some(0);
    store
        .put_param_sync_nodes(std::slice::from_ref(&node))
        .await
        .unwrap();
    assert_eq!(
        store.param_sync_nodes("app-env").await.unwrap(),
        [node.clone()]
    );
    // A state of a sync that does not exist is not written.
    let mut stray = node.clone();
    stray.sync_name = "nope".into();
    store.put_param_sync_nodes(&[stray]).await.unwrap();
    assert!(store.param_sync_nodes("nope").await.unwrap().is_empty());
    assert_eq!(store.list_param_syncs().await.unwrap().len(), 1);
    assert!(store.delete_param_sync("app-env").await.unwrap());
    assert!(!store.delete_param_sync("app-env").await.unwrap());
    assert!(store.param_sync_nodes("app-env").await.unwrap().is_empty());
}

pub async fn associations_are_versioned_and_compliance_follows_the_resources(store: Store) {
    let record = |version: i64, spec: serde_json::Value| AssociationRecord {
        name: "web".into(),
        version,
        spec,
        author: "alice".into(),
        created_at: 1,
        updated_at: version * 10,
        last_scheduled_at: None,
        applied_document_version: None,
    };
    assert!(
        store
            .put_association(&record(1, serde_json::json!({"a": 1})), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_association(&record(1, serde_json::json!({"a": 1})), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_association(&record(2, serde_json::json!({"a": 2})), Some(5))
            .await
            .unwrap()
    );
    store
        .mark_association("web", Some(100), Some(3))
        .await
        .unwrap();
    assert!(
        store
            .put_association(&record(2, serde_json::json!({"a": 2})), Some(1))
            .await
            .unwrap()
    );
    let got = store.association("web").await.unwrap().unwrap();
    assert_eq!((got.version, got.spec["a"].as_i64()), (2, Some(2)));
    assert_eq!(
        (got.last_scheduled_at, got.applied_document_version),
        (Some(100), Some(3)),
        "marks survive updates"
    );
    let versions = store.association_versions("web").await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(versions[0].spec["a"], 1);

    let run = AssociationRun {
        command_id: "c-1".into(),
        association: "web".into(),
        version: 2,
        reason: "created".into(),
        mode: "apply".into(),
        node_id: None,
        created_at: 5,
    };
    store.insert_association_run(&run).await.unwrap();
    store.insert_association_run(&run).await.unwrap();
    assert_eq!(
        store.association_run("c-1").await.unwrap(),
        Some(run.clone())
    );
    assert_eq!(store.association_runs("web", 10).await.unwrap().len(), 1);

    let resource = |name: &str, status: &str| ComplianceResource {
        association: "web".into(),
        node_id: "n-1".into(),
        resource: name.into(),
        kind: "file".into(),
        status: status.into(),
        outcome: if status == COMPLIANT {
            "unchanged".into()
        } else {
            "drifted".into()
        },
        changes: vec!["content".into()],
        diff: None,
        message: None,
        command_id: Some("c-1".into()),
        at: 7,
    };
    let report = |resources: Vec<ComplianceResource>, replace: bool| ComplianceReport {
        association: "web".into(),
        node_id: "n-1".into(),
        node_name: "web-1".into(),
        severity: "HIGH".into(),
        command_id: Some("c-1".into()),
        at: 7,
        resources,
        replace,
    };
    let first = store
        .record_compliance(&report(
            vec![resource("a", COMPLIANT), resource("b", COMPLIANT)],
            true,
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.before, first.after.as_str()), (None, COMPLIANT));
    let drift = store
        .record_compliance(&report(vec![resource("b", NON_COMPLIANT)], false))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (drift.before.as_deref(), drift.after.as_str()),
        (Some(COMPLIANT), NON_COMPLIANT)
    );
    assert_eq!(
        store
            .compliance_resources(Some("web"), Some("n-1"))
            .await
            .unwrap()
            .len(),
        2,
        "a partial report keeps the others"
    );
    let rerun = store
        .record_compliance(&report(vec![resource("a", COMPLIANT)], true))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rerun.after, COMPLIANT,
        "a whole run drops resources that left the document"
    );
    let resources = store.compliance_resources(None, None).await.unwrap();
    assert_eq!(
        resources
            .iter()
            .map(|r| r.resource.as_str())
            .collect::<Vec<_>>(),
        vec!["a"]
    );
    assert_eq!(resources[0].changes, vec!["content".to_string()]);
    let nodes = store.compliance_nodes(Some("web"), None).await.unwrap();
    assert_eq!((nodes.len(), nodes[0].severity.as_str()), (1, "HIGH"));
    assert!(
        store
            .compliance_nodes(None, Some("n-2"))
            .await
            .unwrap()
            .is_empty()
    );

    assert!(store.delete_association("web").await.unwrap());
    assert!(!store.delete_association("web").await.unwrap());
    assert!(store.compliance_nodes(None, None).await.unwrap().is_empty());
    assert!(store.association_versions("web").await.unwrap().is_empty());
    assert_eq!(
        store
            .record_compliance(&report(vec![resource("a", COMPLIANT)], true))
            .await
            .unwrap(),
        None,
        "nothing is recorded for a deleted association"
    );
}

pub(crate) async fn inventory_deltas_apply_against_their_base_and_report_changes(store: DynStore) {
    use operon_proto::{InventoryDelta, InventoryItem, inventory_digest};
    let item = |key: &str, version: &str| InventoryItem {
        key: key.into(),
        attributes: BTreeMap::from([("version".to_owned(), version.to_owned())]),
    };
    let full = vec![
        item("bash", "5.2"),
        item("openssl", "3.0.2"),
        item("vim", "9.0"),
    ];
    let d1 = inventory_digest(&full);
    let delta =
        |base: Option<&str>, digest: &str, upserts: Vec<InventoryItem>, removals: Vec<&str>| {
            InventoryDelta {
                kind: "packages".into(),
                base: base.map(str::to_owned),
                digest: digest.to_owned(),
                upserts,
                removals: removals.into_iter().map(str::to_owned).collect(),
                at: 1,
            }
        };
    // A delta against a base nothing holds is refused.
    assert_eq!(
        store
            .apply_inventory("n-1", &delta(Some("x"), &d1, vec![], vec![]), 1)
            .await
            .unwrap(),
        Err(InventoryRefusal::BaseMismatch { held: None })
    );
    let change = store
        .apply_inventory("n-1", &delta(None, &d1, full.clone(), vec![]), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.added, vec!["bash", "openssl", "vim"]);
    // A wrong digest writes nothing.
    let refused = store
        .apply_inventory(
            "n-1",
            &delta(Some(&d1), "bad", vec![item("zsh", "5")], vec![]),
            2,
        )
        .await
        .unwrap();
    assert!(
        matches!(refused, Err(InventoryRefusal::DigestMismatch { .. })),
        "{refused:?}"
    );
    let after = vec![
        item("bash", "5.2"),
        item("openssl", "3.0.7"),
        item("zsh", "5.9"),
    ];
    let d2 = inventory_digest(&after);
    let change = store
        .apply_inventory(
            "n-1",
            &delta(
                Some(&d1),
                &d2,
                vec![
                    item("openssl", "3.0.7"),
                    item("zsh", "5.9"),
                    item("bash", "5.2"),
                ],
                vec!["vim"],
            ),
            3,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.added, vec!["zsh"]);
    assert_eq!(change.updated, vec!["openssl"]);
    assert_eq!(change.removed, vec!["vim"]);
    // The old base is no longer held.
    assert_eq!(
        store
            .apply_inventory("n-1", &delta(Some(&d1), &d2, vec![], vec![]), 4)
            .await
            .unwrap(),
        Err(InventoryRefusal::BaseMismatch {
            held: Some(d2.clone())
        })
    );
    // An empty delta on the held base changes nothing.
    assert!(
        store
            .apply_inventory("n-1", &delta(Some(&d2), &d2, vec![], vec![]), 5)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
    let rows = store.node_inventory("n-1", Some("packages")).await.unwrap();
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["bash", "openssl", "zsh"]);
    assert_eq!(rows[0].updated_at, 1, "bash never changed");
    assert_eq!(rows[1].updated_at, 3);
    // A second node, and another kind.
    let other = vec![item("openssl", "1.1.1")];
    store
        .apply_inventory(
            "n-2",
            &delta(None, &inventory_digest(&other), other, vec![]),
            6,
        )
        .await
        .unwrap()
        .unwrap();
    let users = InventoryDelta {
        kind: "users".into(),
        ..delta(
            None,
            &inventory_digest(&[item("root", "0")]),
            vec![item("root", "0")],
            vec![],
        )
    };
    store
        .apply_inventory("n-1", &users, 7)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.node_inventory("n-1", None).await.unwrap().len(), 4);
    let openssl = store
        .inventory_items("packages", Some("openssl"))
        .await
        .unwrap();
    let nodes: Vec<(&str, &str)> = openssl
        .iter()
        .map(|r| (r.node_id.as_str(), r.attributes["version"].as_str()))
        .collect();
    assert_eq!(nodes, [("n-1", "3.0.7"), ("n-2", "1.1.1")]);
    assert_eq!(
        store.inventory_items("packages", None).await.unwrap().len(),
        4
    );
    // A whole set replaces what was held.
    let only = vec![item("bash", "5.3")];
    let change = store
        .apply_inventory(
            "n-1",
            &delta(None, &inventory_digest(&only), only, vec![]),
            8,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.removed, vec!["openssl", "zsh"]);
    assert_eq!(change.updated, vec!["bash"]);
}

pub async fn alarm_states_change_once_and_their_history_is_an_outbox(store: Store) {
    use crate::{AlarmRecord, AlarmStateRow};
    let record = AlarmRecord {
        name: "cpu".into(),
        version: 1,
        spec: serde_json::json!({"metric": "cpu.used"}),
        author: "alice".into(),
        created_at: 1,
        updated_at: 1,
    };
    assert!(store.put_alarm(&record, None).await.unwrap());
    assert!(
        !store.put_alarm(&record, None).await.unwrap(),
        "the name is taken"
    );
    let v2 = AlarmRecord {
        version: 2,
        updated_at: 2,
        ..record.clone()
    };
    assert!(
        !store.put_alarm(&v2, Some(5)).await.unwrap(),
        "stale version"
    );
    assert!(store.put_alarm(&v2, Some(1)).await.unwrap());
    assert_eq!(store.alarm("cpu").await.unwrap().unwrap().version, 2);

    let state = |s: &str, at: i64| AlarmStateRow {
        alarm: "cpu".into(),
        node_id: "n1".into(),
        state: s.into(),
        reason: format!("now {s}"),
        reason_data: Some(serde_json::json!({"at": at})),
        updated_at: at,
    };
    let first = store
        .transition_alarm(&state("OK", 10))
        .await
        .unwrap()
        .unwrap();
    assert!(first.previous.is_none());
    assert!(
        store
            .transition_alarm(&state("OK", 11))
            .await
            .unwrap()
            .is_none(),
        "no change, no row"
    );
    let second = store
        .transition_alarm(&state("ALARM", 12))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.previous.as_ref().unwrap().state, "OK");
    assert_eq!(second.previous.as_ref().unwrap().updated_at, 10);
    let states = store.alarm_states(Some("cpu")).await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].state, "ALARM");

    let pending = store.unpublished_alarm_history(10).await.unwrap();
    assert_eq!(
        pending.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![first.id, second.id]
    );
    store
        .mark_alarm_history_published(&[first.id])
        .await
        .unwrap();
    let pending = store.unpublished_alarm_history(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    let history = store.alarm_history("cpu", Some("n1"), 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].state, "ALARM", "newest first");
    assert!(history[1].published);

    // The ALARM opened an incident; OK recovers it, a new ALARM opens another.
    let filter = crate::IncidentFilter {
        limit: 10,
        ..Default::default()
    };
    let incidents = store.incidents(&filter).await.unwrap();
    assert_eq!(incidents.len(), 1);
    let first_incident = incidents[0].clone();
    assert_eq!(
        (first_incident.status.as_str(), first_incident.opened_at),
        ("open", 12)
    );
    store
        .transition_alarm(&state("INSUFFICIENT_DATA", 13))
        .await
        .unwrap()
        .unwrap();
    store
        .transition_alarm(&state("OK", 14))
        .await
        .unwrap()
        .unwrap();
    let recovered = store.incident(&first_incident.id).await.unwrap().unwrap();
    assert_eq!(
        (recovered.status.as_str(), recovered.recovered_at),
        ("recovered", Some(14))
    );
    let kinds: Vec<String> = store
        .incident_events(&first_incident.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["detected", "state", "recovered"]);
    store
        .transition_alarm(&state("ALARM", 15))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.incidents(&filter).await.unwrap().len(), 2);
    assert!(
        store
            .escalate_incident(&first_incident.id, "paged", 16)
            .await
            .unwrap()
    );
    assert!(
        !store
            .escalate_incident(&first_incident.id, "paged", 17)
            .await
            .unwrap(),
        "once"
    );
    let acked = store
        .acknowledge_incident(&first_incident.id, "bob", 18)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acked.acknowledged_by.as_deref(), Some("bob"));
    let resolved = store
        .resolve_incident(&first_incident.id, "bob", Some("fixed"), 19)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.status, "resolved");
    assert_eq!(
        store
            .incident_events(&first_incident.id)
            .await
            .unwrap()
            .len(),
        6
    );
    let open = crate::IncidentFilter {
        status: Some("open".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.incidents(&open).await.unwrap().len(), 1);

    // Heal runs: one row per attempt, counted per instance.
    let run = crate::HealRun {
        id: "h-1".into(),
        heal: "restart".into(),
        incident_id: first_incident.id.clone(),
        alarm: "cpu".into(),
        node_id: "n1".into(),
        attempt: 1,
        status: "starting".into(),
        execution_id: None,
        started_at: 20,
        finished_at: None,
        detail: None,
    };
    assert!(store.insert_heal_run(&run).await.unwrap());
    assert!(
        !store
            .insert_heal_run(&crate::HealRun {
                id: "h-2".into(),
                ..run.clone()
            })
            .await
            .unwrap(),
        "same attempt"
    );
    assert_eq!(store.unfinished_heal_runs().await.unwrap().len(), 1);
    let entries_before = store
        .incident_events(&first_incident.id)
        .await
        .unwrap()
        .len();
    let entry = crate::NewIncidentEvent {
        at: 30,
        kind: "confirmed".into(),
        message: "heal restart attempt 1: the alarm is OK".into(),
        data: Some(serde_json::json!({"attempt": 1})),
    };
    store
        .update_heal_run(
            &crate::HealRun {
                status: "confirmed".into(),
                finished_at: Some(30),
                ..run.clone()
            },
            &entry,
        )
        .await
        .unwrap();
    assert!(store.unfinished_heal_runs().await.unwrap().is_empty());
    // The run's update and its timeline entry are one write.
    let timeline = store.incident_events(&first_incident.id).await.unwrap();
    assert_eq!(timeline.len(), entries_before + 1);
    let last = timeline.last().unwrap();
    assert_eq!(
        (
            last.at,
            last.kind.as_str(),
            last.message.as_str(),
            &last.data
        ),
        (30, "confirmed", entry.message.as_str(), &entry.data)
    );
    // A run whose incident is gone is still updated.
    let orphan = crate::HealRun {
        id: "h-3".into(),
        incident_id: "no-such-incident".into(),
        node_id: "n9".into(),
        ..run.clone()
    };
    assert!(store.insert_heal_run(&orphan).await.unwrap());
    store
        .update_heal_run(
            &crate::HealRun {
                status: "failed".into(),
                finished_at: Some(31),
                ..orphan.clone()
            },
            &entry,
        )
        .await
        .unwrap();
    assert!(store.unfinished_heal_runs().await.unwrap().is_empty());
    assert!(
        store
            .incident_events("no-such-incident")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .last_heal_run_end("restart", "cpu", "n1")
            .await
            .unwrap(),
        Some(30)
    );
    assert_eq!(
        store
            .last_heal_run_end("restart", "cpu", "n2")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .count_heal_runs_since("restart", "cpu", "n1", 20)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count_heal_runs_since("restart", "cpu", "n1", 21)
            .await
            .unwrap(),
        0
    );

    assert!(store.delete_alarm("cpu").await.unwrap());
    assert!(store.alarm_states(None).await.unwrap().is_empty());
    assert!(
        store
            .transition_alarm(&state("OK", 13))
            .await
            .unwrap()
            .is_none(),
        "deleted alarm"
    );
    assert_eq!(
        store.alarm_history("cpu", None, 10).await.unwrap().len(),
        5,
        "history stays"
    );
}

fn metric_sample(name: &str, dims: &[(&str, &str)], at: i64, value: f64) -> MetricSample {
    MetricSample {
        name: name.into(),
        dimensions: dims
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        unit: Some("Percent".into()),
        at,
        value,
    }
}

pub(crate) async fn metric_batches_are_stored_once_with_rollups_and_pruned_in_steps(
    store: DynStore,
) {
    // Two minutes of cpu at 20 s, one disk point; 1_800_000 is a minute (and hour) boundary.
    let t0 = 3_600_000;
    let cpu: Vec<MetricSample> = (0..6)
        .map(|i| metric_sample("cpu.used", &[], t0 + i * 20_000, (i * 10) as f64))
        .collect();
    let mut samples = cpu.clone();
    samples.push(metric_sample(
        "disk.used_percent",
        &[("mount", "/")],
        t0,
        50.0,
    ));
    let batch = |node: &str, seq: u64, samples: Vec<MetricSample>| MetricBatchWrite {
        node_id: node.into(),
        seq,
        received_at: t0,
        samples,
    };
    let stored = store
        .write_metric_batches(&[
            batch("n-1", u64::MAX, samples.clone()),
            batch("n-1", u64::MAX, samples.clone()),
            batch("n-2", u64::MAX, cpu[..1].to_vec()),
        ])
        .await
        .unwrap();
    assert_eq!(
        stored,
        vec![true, false, true],
        "the same seq twice is stored once"
    );
    // A resend in a later transaction, and a new seq repeating a point: nothing doubles.
    let again = store
        .write_metric_batches(&[
            batch("n-1", u64::MAX, samples.clone()),
            batch("n-1", 7, cpu[..2].to_vec()),
        ])
        .await
        .unwrap();
    assert_eq!(again, vec![false, true]);
    // The seqs remembered are the node's latest, a bounded set: once enough
    // newer batches came, an old seq is new again (its points still are not).
    let newer: Vec<MetricBatchWrite> = (1000..1300).map(|seq| batch("n-9", seq, vec![])).collect();
    store.write_metric_batches(&newer).await.unwrap();
    let old_and_recent = store
        .write_metric_batches(&[batch("n-9", 1000, vec![]), batch("n-9", 1299, vec![])])
        .await
        .unwrap();
    assert_eq!(old_and_recent, vec![true, false]);

    let series = store.metric_series(Some("cpu.used"), None).await.unwrap();
    assert_eq!(series.len(), 2);
    let n1 = &series[0];
    assert_eq!(
        (n1.node_id.as_str(), n1.last_at, n1.last_value),
        ("n-1", t0 + 100_000, 50.0)
    );
    assert_eq!(n1.unit.as_deref(), Some("Percent"));
    let disk = store.metric_series(None, Some("n-1")).await.unwrap();
    assert_eq!(disk.len(), 2);
    assert_eq!(
        disk[1].dimensions.get("mount").map(String::as_str),
        Some("/")
    );

    let points = store.metric_points(n1.id, t0, t0 + 60_000).await.unwrap();
    assert_eq!(
        points,
        vec![(t0, 0.0), (t0 + 20_000, 10.0), (t0 + 40_000, 20.0)]
    );
    let minutes = store
        .metric_rollups(n1.id, Resolution::Minute, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        minutes,
        vec![
            MetricRollup {
                bucket: t0,
                count: 3,
                sum: 30.0,
                min: 0.0,
                max: 20.0
            },
            MetricRollup {
                bucket: t0 + 60_000,
                count: 3,
                sum: 120.0,
                min: 30.0,
                max: 50.0
            },
        ]
    );
    let hours = store
        .metric_rollups(n1.id, Resolution::Hour, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        hours,
        vec![MetricRollup {
            bucket: t0,
            count: 6,
            sum: 150.0,
            min: 0.0,
            max: 50.0
        }]
    );

    // Pruning raw before the second minute, one series per step.
    let mut first = 0;
    let mut deleted = 0;
    let mut steps = 0;
    loop {
        let step = store
            .prune_metrics(Resolution::Raw, t0 + 60_000, first, 1)
            .await
            .unwrap();
        deleted += step.deleted;
        steps += 1;
        match step.next {
            Some(next) => first = next,
            None => break,
        }
    }
    assert_eq!(
        (deleted, steps),
        (3 + 1 + 1, 3),
        "n-1 cpu and disk, n-2 cpu"
    );
    assert_eq!(
        store.metric_points(n1.id, 0, i64::MAX).await.unwrap().len(),
        3
    );
    assert_eq!(
        store
            .metric_rollups(n1.id, Resolution::Minute, 0, i64::MAX)
            .await
            .unwrap()
            .len(),
        2,
        "rollups have their own retention"
    );
    let step = store
        .prune_metrics(Resolution::Minute, t0 + 60_000, 0, 100)
        .await
        .unwrap();
    assert_eq!(
        step,
        PruneStep {
            deleted: 1 + 1 + 1,
            next: None
        }
    );

    // Bookkeeping: seqs forgotten (a resend is stored again), stale series dropped.
    store
        .prune_metric_bookkeeping(t0 + 1, t0 + 1)
        .await
        .unwrap();
    let left = store.metric_series(None, None).await.unwrap();
    assert_eq!(left.len(), 1, "only n-1 cpu has a point after t0: {left:?}");
    let stored = store
        .write_metric_batches(&[batch("n-1", u64::MAX, cpu[5..].to_vec())])
        .await
        .unwrap();
    assert_eq!(stored, vec![true]);
}

pub(crate) async fn concurrent_metric_writers_store_every_point_once(store: DynStore) {
    // Eight writers, each sending every batch twice, for two nodes sharing
    // series names: every point once, rollups counting each once.
    let minute = 60_000;
    let mut tasks = Vec::new();
    for writer in 0..8i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..10i64 {
                let node = format!("n-{}", writer % 2);
                let at = (writer * 10 + round) * 1_000;
                let batch = MetricBatchWrite {
                    node_id: node,
                    seq: (writer * 100 + round) as u64,
                    received_at: at,
                    samples: vec![metric_sample("cpu.used", &[], at, 1.0)],
                };
                for _ in 0..2 {
                    store
                        .write_metric_batches(std::slice::from_ref(&batch))
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let series = store.metric_series(Some("cpu.used"), None).await.unwrap();
    assert_eq!(series.len(), 2);
    for s in &series {
        assert_eq!(
            store.metric_points(s.id, 0, i64::MAX).await.unwrap().len(),
            40
        );
        let minutes = store
            .metric_rollups(s.id, Resolution::Minute, 0, minute * 10)
            .await
            .unwrap();
        let counted: u64 = minutes.iter().map(|r| r.count).sum();
        assert_eq!(
            (counted, minutes.iter().map(|r| r.sum).sum::<f64>()),
            (40, 40.0)
        );
    }
}

pub(crate) async fn monitors_are_versioned_and_deleted(store: DynStore) {
    use crate::{MONITOR_CHECK, MonitorRecord};
    let record = MonitorRecord {
        name: "app-http".into(),
        kind: MONITOR_CHECK.into(),
        spec: serde_json::json!({"interval_secs": 30, "probe": {"type": "tcp", "host": "h", "port": 80}}),
        targets: vec!["tag:role=web".into()],
        author: "alice".into(),
        role: Some("ops".into()),
        version: 1,
        created_at: 10,
        updated_at: 10,
    };
    assert!(store.put_monitor(&record, None).await.unwrap());
    assert!(
        !store.put_monitor(&record, None).await.unwrap(),
        "the name is taken"
    );
    assert_eq!(
        store.monitor("app-http").await.unwrap(),
        Some(record.clone())
    );
    let next = MonitorRecord {
        version: 2,
        targets: vec!["all".into()],
        role: None,
        updated_at: 20,
        ..record.clone()
    };
    assert!(
        !store.put_monitor(&next, Some(7)).await.unwrap(),
        "a stale version"
    );
    assert!(store.put_monitor(&next, Some(1)).await.unwrap());
    let listed = store.list_monitors().await.unwrap();
    assert_eq!(listed, vec![next.clone()]);
    assert_eq!(listed[0].created_at, 10);
    assert!(!store.delete_monitor("app-http", Some(1)).await.unwrap());
    assert!(store.delete_monitor("app-http", None).await.unwrap());
    assert!(!store.delete_monitor("app-http", None).await.unwrap());
    assert_eq!(store.monitor("app-http").await.unwrap(), None);
}

fn log_line(at: i64, source: &str, level: Option<&str>, message: &str) -> crate::LogLine {
    crate::LogLine {
        at,
        source: source.into(),
        level: level.map(str::to_owned),
        message: message.into(),
        fields: [("pid".to_owned(), "42".to_owned())].into(),
    }
}

pub(crate) async fn log_batches_are_stored_once_queried_by_filter_and_pruned(store: DynStore) {
    use crate::{LogBatchWrite, LogFilter};
    let batch = |node: &str, seq: u64, lines: Vec<crate::LogLine>| LogBatchWrite {
        node_id: node.into(),
        seq,
        received_at: 1_000,
        lines,
    };
    let first = batch(
        "n1",
        7,
        vec![
            log_line(100, "file:/var/log/app.log", Some("error"), "db 100% down"),
            log_line(200, "file:/var/log/app.log", None, "all good"),
            log_line(
                300,
                "journal:nginx.service",
                Some("warning"),
                "slow_upstream",
            ),
        ],
    );
    let other = batch(
        "n2",
        7,
        vec![log_line(150, "journal:", Some("critical"), "kernel panic")],
    );
    let stored = store
        .write_log_batches(&[first.clone(), other, first.clone()])
        .await
        .unwrap();
    assert_eq!(stored, [true, true, false], "a seq is stored once per node");
    assert_eq!(store.write_log_batches(&[first]).await.unwrap(), [false]);

    let query = |filter: LogFilter| {
        let store = store.clone();
        async move {
            store
                .query_logs(&LogFilter {
                    limit: if filter.limit == 0 { 100 } else { filter.limit },
                    ..filter
                })
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.message)
                .collect::<Vec<_>>()
        }
    };
    let all = store
        .query_logs(&LogFilter {
            limit: 100,
            ..LogFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    assert_eq!(all[0].fields["pid"], "42");
    assert_eq!(all[0].level.as_deref(), Some("error"));
    assert_eq!(all[1].level, None);

    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (what, filter, expected) in [
        (
            "one node",
            LogFilter {
                node_ids: Some(vec!["n2".into()]),
                ..LogFilter::default()
            },
            s(&["kernel panic"]),
        ),
        (
            "no nodes",
            LogFilter {
                node_ids: Some(vec![]),
                ..LogFilter::default()
            },
            s(&[]),
        ),
        (
            "error or worse",
            LogFilter {
                level: Some("error".into()),
                ..LogFilter::default()
            },
            s(&["db 100% down", "kernel panic"]),
        ),
        (
            "exact source",
            LogFilter {
                source: Some("journal:".into()),
                ..LogFilter::default()
            },
            s(&["kernel panic"]),
        ),
        (
            "source prefix",
            LogFilter {
                source: Some("journal:*".into()),
                ..LogFilter::default()
            },
            s(&["slow_upstream", "kernel panic"]),
        ),
        (
            "time window",
            LogFilter {
                since: Some(150),
                until: Some(300),
                ..LogFilter::default()
            },
            s(&["all good", "kernel panic"]),
        ),
        (
            "text, wildcards literal, case-insensitive",
            LogFilter {
                contains: Some("100%".into()),
                ..LogFilter::default()
            },
            s(&["db 100% down"]),
        ),
        (
            "underscore is literal",
            LogFilter {
                contains: Some("W_UP".into()),
                ..LogFilter::default()
            },
            s(&["slow_upstream"]),
        ),
        (
            "the newest two without a cursor",
            LogFilter {
                limit: 2,
                ..LogFilter::default()
            },
            s(&["slow_upstream", "kernel panic"]),
        ),
        (
            "the oldest two after a cursor",
            LogFilter {
                after_id: Some(all[0].id),
                limit: 2,
                ..LogFilter::default()
            },
            s(&["all good", "slow_upstream"]),
        ),
    ] {
        assert_eq!(query(filter).await, expected, "{what}");
    }

    // Pruning in steps: lines before 250, one row at a time.
    assert_eq!(store.prune_logs(250, 1).await.unwrap(), 1);
    assert_eq!(store.prune_logs(250, 10).await.unwrap(), 2);
    assert_eq!(store.prune_logs(250, 10).await.unwrap(), 0);
    assert_eq!(query(LogFilter::default()).await, s(&["slow_upstream"]));
    // Seqs of nodes silent since before the cut are forgotten.
    let again = || batch("n2", 7, vec![log_line(900, "journal:", None, "again")]);
    assert_eq!(store.write_log_batches(&[again()]).await.unwrap(), [false]);
    assert_eq!(store.prune_logs(1_001, 10).await.unwrap(), 1);
    assert_eq!(store.write_log_batches(&[again()]).await.unwrap(), [true]);
    assert_eq!(query(LogFilter::default()).await, s(&["again"]));
}

pub async fn sessions_end_once_and_keep_their_recording_chunks_in_order(store: Store) {
    use crate::{SESSION_ACTIVE, SessionEnd, SessionFilter, SessionRecord};
    let record = |id: &str, node: &str, at: i64| SessionRecord {
        id: id.into(),
        node_id: node.into(),
        node_name: format!("{node}-name"),
        kind: "shell".into(),
        run_as: Some("deploy".into()),
        command: None,
        remote: None,
        started_by: "alice".into(),
        started_at: at,
        touched_at: at,
        idle_timeout_secs: 600,
        max_duration_secs: 3600,
        status: SESSION_ACTIVE.into(),
        ended_at: None,
        end_reason: None,
        exit_code: None,
        terminate_by: None,
        recording_sha256: None,
        recording_bytes: None,
    };
    store.insert_session(&record("s1", "n1", 10)).await.unwrap();
    store.insert_session(&record("s2", "n2", 20)).await.unwrap();
    assert!(
        store.insert_session(&record("s1", "n1", 30)).await.is_err(),
        "ids are unique"
    );

    store
        .append_recording_chunk("s1", 1, b"second")
        .await
        .unwrap();
    store
        .append_recording_chunk("s1", 0, b"first")
        .await
        .unwrap();
    assert!(
        store
            .append_recording_chunk("s1", 0, b"again")
            .await
            .is_err()
    );
    let chunks = store.recording_chunks("s1").await.unwrap();
    assert_eq!(
        chunks,
        vec![(0, b"first".to_vec()), (1, b"second".to_vec())]
    );
    assert!(store.recording_chunks("s2").await.unwrap().is_empty());

    store.touch_session("s1", 100).await.unwrap();
    let stale: Vec<String> = store
        .stale_sessions(50)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(stale, vec!["s2"], "s1 was touched after 50");

    assert!(store.request_session_end("s2", "bob").await.unwrap());
    assert_eq!(
        store
            .session("s2")
            .await
            .unwrap()
            .unwrap()
            .terminate_by
            .as_deref(),
        Some("bob")
    );

    let end = SessionEnd {
        status: "ended".into(),
        ended_at: 200,
        reason: "exited".into(),
        exit_code: Some(3),
        recording_sha256: Some("ab".into()),
        recording_bytes: Some(12),
    };
    assert!(store.end_session("s1", &end).await.unwrap());
    let again = SessionEnd {
        status: "failed".into(),
        ..end.clone()
    };
    assert!(
        !store.end_session("s1", &again).await.unwrap(),
        "a session ends once"
    );
    assert!(!store.request_session_end("s1", "bob").await.unwrap());
    let s1 = store.session("s1").await.unwrap().unwrap();
    assert_eq!(
        (s1.status.as_str(), s1.exit_code, s1.ended_at),
        ("ended", Some(3), Some(200))
    );
    assert_eq!(s1.recording_sha256.as_deref(), Some("ab"));
    assert!(
        store
            .stale_sessions(i64::MAX)
            .await
            .unwrap()
            .iter()
            .all(|s| s.id != "s1")
    );

    let all = store
        .list_sessions(&SessionFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["s2", "s1"]
    );
    let active = store
        .list_sessions(&SessionFilter {
            active_only: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        active.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["s2"]
    );
    let on_n1 = store
        .list_sessions(&SessionFilter {
            node_id: Some("n1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(on_n1.len(), 1);
    assert!(store.session("nope").await.unwrap().is_none());
}

pub(crate) async fn console_sessions_expire_and_sign_out_once(store: DynStore) {
    use crate::ConsoleSession;
    let session = |id: &str, expires_at: i64| ConsoleSession {
        id_hash: id.into(),
        sealed_token: vec![1, 2, 3],
        csrf_secret: format!("csrf-{id}"),
        actor: "alice".into(),
        created_at: 10,
        expires_at,
    };
    store
        .insert_console_session(&session("a", 100))
        .await
        .unwrap();
    store
        .insert_console_session(&session("b", 200))
        .await
        .unwrap();
    assert!(
        store
            .insert_console_session(&session("a", 300))
            .await
            .is_err(),
        "an id is never reused"
    );
    assert_eq!(
        store.console_session("a", 50).await.unwrap(),
        Some(session("a", 100))
    );
    assert_eq!(
        store.console_session("a", 100).await.unwrap(),
        None,
        "expired at its expiry"
    );
    assert_eq!(store.prune_console_sessions(150).await.unwrap(), 1);
    assert!(store.console_session("b", 150).await.unwrap().is_some());
    assert!(store.delete_console_session("b").await.unwrap());
    assert!(!store.delete_console_session("b").await.unwrap(), "once");
    assert!(store.console_session("b", 150).await.unwrap().is_none());
}

pub(crate) async fn a_nodes_recent_invocations_come_newest_first(store: DynStore) {
    let both = vec![
        ("n-1".to_string(), "web".to_string()),
        ("n-2".to_string(), "db".to_string()),
    ];
    let only_two = vec![("n-2".to_string(), "db".to_string())];
    for (id, at, targets) in [
        ("c-a", 30, &both),
        ("c-b", 10, &both),
        ("c-c", 20, &only_two),
    ] {
        let mut c = command(id);
        c.created_at = at;
        store.insert_command(&c, targets).await.unwrap();
    }
    let ids = |invocations: Vec<Invocation>| -> Vec<String> {
        invocations.into_iter().map(|i| i.command_id).collect()
    };
    assert_eq!(
        ids(store.node_invocations("n-2", 10).await.unwrap()),
        ["c-a", "c-c", "c-b"]
    );
    assert_eq!(
        ids(store.node_invocations("n-1", 1).await.unwrap()),
        ["c-a"]
    );
    assert!(store.node_invocations("n-3", 10).await.unwrap().is_empty());
}
