//! `operon workflows ...`: the offline runner (owned by the operon-asl work)
//! and the server's state machines (in [`super::runbooks`]).

use std::process::ExitCode;

use super::client::ClientArgs;
use super::runbooks::ServerWorkflowsCmd;

#[derive(clap::Subcommand)]
pub enum WorkflowsCmd {
    /// Run a state machine in-process and print the result as JSON.
    RunLocal(run_local::RunLocalArgs),
    #[command(flatten)]
    Server(ServerWorkflowsCmd),
}

pub fn run(client: &ClientArgs, cmd: WorkflowsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        WorkflowsCmd::RunLocal(args) => run_local::run(args),
        WorkflowsCmd::Server(cmd) => super::runbooks::workflows(client, cmd),
    }
}

mod run_local {
    use anyhow::{Context, bail};
    use operon_asl::runner::{
        Host, MemoryHost, MockConfig, RunReport, check_expectation, run_to_end,
    };
    use operon_asl::{ExecutionParams, Failure, StateMachine, Status};
    use serde_json::{Value, json};
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::time::Instant;

    #[derive(clap::Args)]
    pub struct RunLocalArgs {
        /// The ASL definition (JSON).
        #[arg(long, required_unless_present = "cases")]
        definition: Option<PathBuf>,
        /// The execution input (JSON); `{}` when absent.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Run every case of a JSONL file (lines of {"id","definition","input","expect"}).
        #[arg(long, conflicts_with = "definition")]
        cases: Option<PathBuf>,
        /// Print the event history too.
        #[arg(long)]
        history: bool,
        /// Add "stats": {"transitions", "seconds"} to the result.
        #[arg(long)]
        stats: bool,
        /// Wait for timers in real time instead of fast-forwarding.
        #[arg(long)]
        real_time: bool,
        /// Task answers, in Step Functions Local's mock configuration format.
        #[arg(long)]
        mock_config: Option<PathBuf>,
        /// The state machine of the mock configuration (default: the first).
        #[arg(long)]
        state_machine: Option<String>,
        /// The test case of the mock configuration (default: the first).
        #[arg(long)]
        test_case: Option<String>,
        /// ItemReader/ResultWriter objects live at `DIR/<bucket>/<key>`. Without it,
        /// an ItemReader whose parameters give only `Key` reads that local file.
        #[arg(long)]
        objects_dir: Option<PathBuf>,
        /// Seed for States.UUID, States.MathRandom and retry jitter.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Execution name (appears in $$.Execution).
        #[arg(long, default_value = "local-execution")]
        name: String,
        /// Stop after this many state transitions.
        #[arg(long, default_value_t = 25_000_000)]
        max_transitions: u64,
        /// Largest execution input and state input/output, in bytes; larger
        /// fails with States.DataLimitExceeded (AWS's quota is 256 KiB).
        #[arg(long, default_value_t = operon_asl::engine::DEFAULT_MAX_PAYLOAD_BYTES)]
        max_payload_bytes: u64,
    }

    pub fn run(args: RunLocalArgs) -> anyhow::Result<ExitCode> {
        let mocks = match &args.mock_config {
            Some(p) => {
                let v = read_json(p)?;
                MockConfig::from_value(&v, args.state_machine.as_deref(), args.test_case.as_deref())
                    .map_err(anyhow::Error::msg)?
            }
            None => MockConfig::default(),
        };
        if let Some(cases) = &args.cases {
            return run_cases(&args, cases, mocks);
        }
        let Some(def_path) = &args.definition else {
            bail!("--definition is required")
        };
        let text = std::fs::read_to_string(def_path)
            .with_context(|| format!("reading {}", def_path.display()))?;
        let machine = match StateMachine::parse_str(&text) {
            Ok(m) => m,
            Err(e) => {
                println!(
                    "{}",
                    json!({"status": "INVALID", "error": "States.ValidationError", "cause": e.to_string()})
                );
                return Ok(ExitCode::from(2));
            }
        };
        let input = match &args.input {
            Some(p) => read_json(p)?,
            None => json!({}),
        };
        let mut host = FileHost {
            mocks,
            objects_dir: args.objects_dir.clone(),
            real_time: args.real_time,
        };
        let started = Instant::now();
        let report = run_to_end(Arc::new(machine), input, params(&args), &mut host, u64::MAX);
        let seconds = started.elapsed().as_secs_f64();
        println!("{}", render(&report, &args, seconds));
        Ok(if report.outcome.status == Status::Succeeded {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }

    fn params(args: &RunLocalArgs) -> ExecutionParams {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        ExecutionParams {
            name: args.name.clone(),
            start_time_millis: now,
            seed: args.seed,
            record_history: args.history,
            max_transitions: args.max_transitions,
            max_payload_bytes: args.max_payload_bytes,
            ..ExecutionParams::default()
        }
    }

    fn render(report: &RunReport, args: &RunLocalArgs, seconds: f64) -> Value {
        let mut out = serde_json::to_value(&report.outcome).unwrap_or(Value::Null);
        if report.outcome.status == Status::Succeeded && out.get("output").is_none() {
            out["output"] = Value::Null;
        }
        if args.stats {
            out["stats"] = json!({ "transitions": report.transitions, "seconds": seconds });
        }
        if args.history {
            out["history"] = serde_json::to_value(&report.history).unwrap_or(Value::Null);
        }
        out
    }

    fn run_cases(args: &RunLocalArgs, path: &Path, mocks: MockConfig) -> anyhow::Result<ExitCode> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let (mut passed, mut failed) = (0u64, 0u64);
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let case: Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
            let id = case
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            match run_case(args, &case, &mocks) {
                Ok(()) => passed += 1,
                Err(why) => {
                    failed += 1;
                    println!("FAIL {id}: {why}");
                }
            }
        }
        println!("{passed} passed, {failed} failed");
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }

    fn run_case(args: &RunLocalArgs, case: &Value, mocks: &MockConfig) -> Result<(), String> {
        let machine = StateMachine::from_value(&case["definition"])
            .map_err(|e| format!("rejected definition: {e}"))?;
        let mut host = MemoryHost {
            mocks: mocks.clone(),
            ..MemoryHost::default()
        };
        host.load_fixtures(case);
        let mut p = params(args);
        p.record_history = false;
        let report = run_to_end(
            Arc::new(machine),
            case["input"].clone(),
            p,
            &mut host,
            10_000_000,
        );
        check_expectation(&report.outcome, &case["expect"])
    }

    fn read_json(p: &Path) -> anyhow::Result<Value> {
        crate::cli::input::read_json_file("run-local", p)
    }

    /// Answers tasks from the mock configuration and reads/writes objects under `--objects-dir`.
    struct FileHost {
        mocks: MockConfig,
        objects_dir: Option<PathBuf>,
        real_time: bool,
    }

    impl FileHost {
        fn object_path(&self, parameters: &Value) -> Result<PathBuf, Failure> {
            let bucket = parameters.get("Bucket").and_then(Value::as_str);
            let key = parameters
                .get("Key")
                .or_else(|| parameters.get("Prefix"))
                .and_then(Value::as_str);
            match (&self.objects_dir, bucket, key) {
                (Some(dir), Some(b), Some(k)) => Ok(dir.join(b).join(k)),
                (Some(dir), Some(b), None) => Ok(dir.join(b)),
                (None, None, Some(k)) => Ok(PathBuf::from(k)),
                (None, _, _) => Err(Failure::new(
                    "States.ItemReaderFailed",
                    "no --objects-dir given for an S3 object",
                )),
                _ => Err(Failure::new(
                    "States.ItemReaderFailed",
                    "the parameters need 'Bucket' and 'Key'",
                )),
            }
        }
    }

    impl Host for FileHost {
        fn invoke_task(
            &mut self,
            state: &str,
            _resource: &str,
            _input: &Value,
            attempt: u32,
        ) -> Result<Value, Failure> {
            self.mocks.answer(state, attempt)
        }

        fn read_object(&mut self, _resource: &str, parameters: &Value) -> Result<String, Failure> {
            let path = self.object_path(parameters)?;
            std::fs::read_to_string(&path).map_err(|e| {
                Failure::new(
                    "States.ItemReaderFailed",
                    format!("cannot read {}: {e}", path.display()),
                )
            })
        }

        fn write_objects(
            &mut self,
            _resource: &str,
            parameters: &Value,
            objects: &[(String, Value)],
        ) -> Result<(), Failure> {
            let bucket = parameters
                .get("Bucket")
                .and_then(Value::as_str)
                .unwrap_or("results");
            let Some(dir) = &self.objects_dir else {
                return Err(Failure::new(
                    "States.ResultWriterFailed",
                    "no --objects-dir given for ResultWriter",
                ));
            };
            for (key, value) in objects {
                let path = dir.join(bucket).join(key);
                let written = path
                    .parent()
                    .map(std::fs::create_dir_all)
                    .transpose()
                    .and_then(|_| {
                        std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap_or_default())
                    });
                if let Err(e) = written {
                    return Err(Failure::new(
                        "States.ResultWriterFailed",
                        format!("cannot write {}: {e}", path.display()),
                    ));
                }
            }
            Ok(())
        }

        fn advance_clock(&mut self, from_millis: i64, to_millis: i64) {
            if self.real_time && to_millis > from_millis {
                std::thread::sleep(std::time::Duration::from_millis(
                    (to_millis - from_millis) as u64,
                ));
            }
        }
    }

    /// Small seams for the unit tests below.
    #[cfg(test)]
    pub mod tests_support {
        use super::*;
        use operon_asl::Outcome;

        pub fn object_path(
            objects_dir: Option<PathBuf>,
            parameters: &Value,
        ) -> Result<PathBuf, Failure> {
            FileHost {
                mocks: MockConfig::default(),
                objects_dir,
                real_time: false,
            }
            .object_path(parameters)
        }

        pub fn render_outcome(
            ok: bool,
            output: Option<Value>,
            error: Option<String>,
            cause: Option<String>,
        ) -> Value {
            let status = if ok {
                Status::Succeeded
            } else {
                Status::Failed
            };
            let report = RunReport {
                outcome: Outcome {
                    status,
                    output,
                    error,
                    cause,
                },
                history: Vec::new(),
                transitions: 0,
                virtual_seconds: 0.0,
            };
            #[derive(clap::Parser)]
            struct Cli {
                #[command(flatten)]
                args: RunLocalArgs,
            }
            let cli = <Cli as clap::Parser>::parse_from(["run-local", "--definition", "d.json"]);
            render(&report, &cli.args, 0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::run_local::tests_support::{object_path, render_outcome};
    use serde_json::json;
    use std::path::PathBuf;

    #[test]
    fn objects_map_onto_bucket_directories() {
        let p = object_path(
            Some(PathBuf::from("/data")),
            &json!({"Bucket": "b", "Key": "k/x.csv"}),
        )
        .unwrap();
        assert_eq!(p, PathBuf::from("/data/b/k/x.csv"));
        let local = object_path(None, &json!({"Key": "/tmp/items.jsonl"})).unwrap();
        assert_eq!(local, PathBuf::from("/tmp/items.jsonl"));
        assert!(object_path(None, &json!({"Bucket": "b", "Key": "k"})).is_err());
    }

    #[test]
    fn results_print_as_status_output_or_error_cause() {
        assert_eq!(
            render_outcome(true, Some(json!({"a": 1})), None, None),
            json!({"status": "SUCCEEDED", "output": {"a": 1}})
        );
        assert_eq!(
            render_outcome(false, None, Some("E".into()), Some("C".into())),
            json!({"status": "FAILED", "error": "E", "cause": "C"})
        );
    }
}
