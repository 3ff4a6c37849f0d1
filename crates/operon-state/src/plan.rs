//! Order of application, and what a resource's outcome means for the others.
//!
//! Edges: `a requires b` puts `b` before `a`; `a notifies s` puts `a` before
//! `s` (so a restart sees the change). The order is topological and stable:
//! among resources free to go, the earliest in the document goes first, so a
//! document without edges applies top to bottom.
//!
//! Failure travels only along `requires`: a resource is skipped when
//! something it requires failed or was itself skipped. A `notify` never skips
//! anything; a notified service/command is triggered when a resource
//! notifying it changed.

use std::collections::{BTreeSet, HashMap};

use crate::document::StateDocument;

/// Resources and edges by index in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    pub names: Vec<String>,
    /// `requires[i]`: indexes `i` requires.
    pub requires: Vec<Vec<usize>>,
    /// `notify[i]`: indexes `i` notifies.
    pub notify: Vec<Vec<usize>>,
}

/// The edges form a cycle; `path` starts and ends with the same name, each
/// name running before the next (`a -> b -> a`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dependency cycle: {} (each must be applied before the next)", .path.join(" -> "))]
pub struct CycleError {
    pub path: Vec<String>,
}

/// An edge names a resource that does not exist (only for graphs built by
/// hand; validated documents never have one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource {from:?} refers to {to:?}, which does not exist")]
pub struct UnknownResource {
    pub from: String,
    pub to: String,
}

impl Graph {
    /// The graph of a validated document.
    pub fn from_document(document: &StateDocument) -> Result<Graph, UnknownResource> {
        let edges = document
            .resources
            .iter()
            .map(|r| (r.name.clone(), r.requires.clone(), r.notify.clone()))
            .collect::<Vec<_>>();
        Graph::from_names(&edges)
    }

    /// A graph from `(name, requires, notify)` triples.
    pub fn from_names(
        resources: &[(String, Vec<String>, Vec<String>)],
    ) -> Result<Graph, UnknownResource> {
        let index: HashMap<&str, usize> = resources
            .iter()
            .enumerate()
            .map(|(i, (name, _, _))| (name.as_str(), i))
            .collect();
        let lookup = |from: &str, targets: &[String]| {
            targets
                .iter()
                .map(|t| {
                    index
                        .get(t.as_str())
                        .copied()
                        .ok_or_else(|| UnknownResource {
                            from: from.to_string(),
                            to: t.clone(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let mut graph = Graph {
            names: Vec::new(),
            requires: Vec::new(),
            notify: Vec::new(),
        };
        for (name, requires, notify) in resources {
            graph.names.push(name.clone());
            graph.requires.push(lookup(name, requires)?);
            graph.notify.push(lookup(name, notify)?);
        }
        Ok(graph)
    }

    fn len(&self) -> usize {
        self.names.len()
    }

    /// `before[i]`: the indexes that must run right after `i`, deduplicated.
    fn successors(&self) -> Vec<BTreeSet<usize>> {
        let mut after = vec![BTreeSet::new(); self.len()];
        for (i, required) in self.requires.iter().enumerate() {
            for &r in required {
                after[r].insert(i);
            }
        }
        for (i, notified) in self.notify.iter().enumerate() {
            for &n in notified {
                after[i].insert(n);
            }
        }
        after
    }

    /// A stable topological order of all resources, or the first cycle.
    pub fn order(&self) -> Result<Vec<usize>, CycleError> {
        let successors = self.successors();
        let mut waiting_on = vec![0usize; self.len()];
        for next in &successors {
            for &n in next {
                waiting_on[n] += 1;
            }
        }
        let mut ready: BTreeSet<usize> = (0..self.len()).filter(|&i| waiting_on[i] == 0).collect();
        let mut order = Vec::with_capacity(self.len());
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &n in &successors[i] {
                waiting_on[n] -= 1;
                if waiting_on[n] == 0 {
                    ready.insert(n);
                }
            }
        }
        if order.len() == self.len() {
            Ok(order)
        } else {
            let stuck: BTreeSet<usize> = (0..self.len()).filter(|&i| waiting_on[i] > 0).collect();
            Err(self.cycle_among(&stuck, &successors))
        }
    }

    /// Every node left after Kahn's algorithm lies on or behind a cycle; walk
    /// predecessors inside that set until a node repeats.
    fn cycle_among(&self, stuck: &BTreeSet<usize>, successors: &[BTreeSet<usize>]) -> CycleError {
        let mut predecessors = vec![Vec::new(); self.len()];
        for (i, next) in successors.iter().enumerate() {
            for &n in next {
                if stuck.contains(&i) {
                    predecessors[n].push(i);
                }
            }
        }
        // Each stuck node has a stuck predecessor, so the walk cannot end.
        let start = stuck.first().copied().unwrap_or(0);
        let mut walk = vec![start];
        let mut position = HashMap::from([(start, 0usize)]);
        let mut current = start;
        while let Some(&previous) = predecessors[current].iter().min() {
            if let Some(&at) = position.get(&previous) {
                // walk[at..] followed backwards is the cycle.
                let mut cycle: Vec<usize> = walk[at..].iter().rev().copied().collect();
                let lowest = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, n)| **n)
                    .map(|(k, _)| k);
                cycle.rotate_left(lowest.unwrap_or(0));
                cycle.push(cycle[0]);
                return CycleError {
                    path: cycle.iter().map(|&n| self.names[n].clone()).collect(),
                };
            }
            position.insert(previous, walk.len());
            walk.push(previous);
            current = previous;
        }
        CycleError {
            path: stuck.iter().map(|&n| self.names[n].clone()).collect(),
        }
    }
}

/// What happened when a resource was applied (or would have been, in check mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Changed,
    Failed,
    /// Not applied because something it requires failed or was skipped.
    Skipped,
}

/// What to do with a resource whose turn has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Skip it: `because` is a resource it requires that failed or was skipped.
    Skip { because: usize },
    /// Apply it. `triggered_by` lists the resources notifying it that changed:
    /// when not empty, a service must be restarted and a command run.
    Apply { triggered_by: Vec<usize> },
}

/// Decide for `resource`, given the outcomes so far (`None`: not applied yet).
/// Call in [`Graph::order`] order, so every resource it depends on is decided.
pub fn next(graph: &Graph, resource: usize, outcomes: &[Option<Outcome>]) -> Step {
    let outcome = |i: usize| outcomes.get(i).copied().flatten();
    let blocked = graph
        .requires
        .get(resource)
        .into_iter()
        .flatten()
        .copied()
        .find(|&r| matches!(outcome(r), Some(Outcome::Failed | Outcome::Skipped)));
    if let Some(because) = blocked {
        return Step::Skip { because };
    }
    let triggered_by = graph
        .notify
        .iter()
        .enumerate()
        .filter(|(from, notified)| {
            notified.contains(&resource) && outcome(*from) == Some(Outcome::Changed)
        })
        .map(|(from, _)| from)
        .collect();
    Step::Apply { triggered_by }
}

/// The result of a whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagation {
    /// Final outcome per resource, by document index.
    pub outcomes: Vec<Outcome>,
    /// Resources (document order) that were triggered by a changed notifier
    /// and not skipped: services to restart, commands to run.
    pub triggered: Vec<usize>,
}

/// Simulate a run: `apply(i)` is what applying resource `i` yields (called
/// only for resources that are not skipped, in `order`).
pub fn propagate(
    graph: &Graph,
    order: &[usize],
    mut apply: impl FnMut(usize) -> Outcome,
) -> Propagation {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; graph.len()];
    let mut triggered = Vec::new();
    for &i in order.iter().filter(|&&i| i < graph.len()) {
        outcomes[i] = Some(match next(graph, i, &outcomes) {
            Step::Skip { .. } => Outcome::Skipped,
            Step::Apply { triggered_by } => {
                if !triggered_by.is_empty() {
                    triggered.push(i);
                }
                apply(i)
            }
        });
    }
    triggered.sort_unstable();
    Propagation {
        outcomes: outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Skipped))
            .collect(),
        triggered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `spec`: "name:req1,req2:notify1" per resource.
    fn graph(spec: &[&str]) -> Graph {
        let list = |s: Option<&str>| -> Vec<String> {
            s.unwrap_or("")
                .split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        let triples: Vec<_> = spec
            .iter()
            .map(|s| {
                let mut parts = s.split(':');
                let name = parts.next().unwrap_or("").to_string();
                (name, list(parts.next()), list(parts.next()))
            })
            .collect();
        Graph::from_names(&triples).unwrap()
    }

    fn names(g: &Graph, order: &[usize]) -> Vec<String> {
        order.iter().map(|&i| g.names[i].clone()).collect()
    }

    #[test]
    fn order_table() {
        let cases: &[(&[&str], Result<&str, &str>)] = &[
            (&[], Ok("")),
            (&["a"], Ok("a")),
            (&["a", "b", "c"], Ok("a b c")),
            (&["a:b", "b"], Ok("b a")),
            (&["a:b", "b:c", "c"], Ok("c b a")),
            (&["a::s", "s"], Ok("a s")),
            (&["s", "a::s"], Ok("a s")),
            (&["x", "a:b", "b", "y"], Ok("x b a y")),
            // diamond: d requires b and c, both require a
            (&["d:b,c", "b:a", "c:a", "a"], Ok("a b c d")),
            (&["d:c,b", "c:a", "b:a", "a"], Ok("a c b d")),
            // duplicate edges are harmless
            (&["a:b,b", "b"], Ok("b a")),
            (&["a:b", "b::a"], Ok("b a")),
            // cycles
            (&["a:a"], Err("a -> a")),
            (&["s::s"], Err("s -> s")),
            (&["a:b", "b:a"], Err("a -> b -> a")),
            (&["a:c", "b:a", "c:b"], Err("a -> b -> c -> a")),
            (&["x", "a:c", "b:a", "c:b", "z:a"], Err("a -> b -> c -> a")),
            (&["f::s", "s:f"], Ok("f s")),
            (&["f:s:s", "s"], Err("f -> s -> f")),
        ];
        for (spec, expected) in cases {
            let g = graph(spec);
            let got = g
                .order()
                .map(|o| names(&g, &o).join(" "))
                .map_err(|e| e.path.join(" -> "));
            assert_eq!(
                got,
                expected.map(str::to_string).map_err(str::to_string),
                "{spec:?}"
            );
        }
    }

    #[test]
    fn document_graph_orders_and_finds_cycles() {
        let text = "schemaVersion: operon-state/1\nresources:\n  - {name: conf, type: file, path: /c, content: x, requires: [pkg], notify: [svc]}\n  - {name: svc, type: service, requires: [pkg]}\n  - {name: pkg, type: package}\n";
        let doc = crate::document::parse(text).unwrap();
        let graph = Graph::from_document(&doc).unwrap();
        assert_eq!(
            names(&graph, &graph.order().unwrap()),
            ["pkg", "conf", "svc"]
        );
        let cyclic = text.replace("type: package}", "type: package, requires: [svc]}");
        let doc = crate::document::parse(&cyclic).unwrap();
        let err = Graph::from_document(&doc).unwrap().order().unwrap_err();
        // Any real cycle will do; this one is found walking back from the first stuck resource.
        assert_eq!(err.path, ["conf", "svc", "pkg", "conf"]);
    }

    #[test]
    fn cycle_message() {
        let err = graph(&["a:b", "b:a"]).order().unwrap_err();
        assert_eq!(
            err.to_string(),
            "dependency cycle: a -> b -> a (each must be applied before the next)"
        );
    }

    #[test]
    fn unknown_edge_is_refused() {
        let err = Graph::from_names(&[("a".into(), vec!["zz".into()], vec![])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "resource \"a\" refers to \"zz\", which does not exist"
        );
    }

    fn run(spec: &[&str], raw: &str) -> (String, Vec<String>) {
        let g = graph(spec);
        let order = g.order().unwrap();
        let raw: Vec<Outcome> = raw
            .chars()
            .map(|c| match c {
                'C' => Outcome::Changed,
                'F' => Outcome::Failed,
                _ => Outcome::Unchanged,
            })
            .collect();
        let p = propagate(&g, &order, |i| raw[i]);
        let letters = p
            .outcomes
            .iter()
            .map(|o| match o {
                Outcome::Unchanged => 'U',
                Outcome::Changed => 'C',
                Outcome::Failed => 'F',
                Outcome::Skipped => 'S',
            })
            .collect();
        (letters, names(&g, &p.triggered))
    }

    #[test]
    fn propagate_table() {
        // (graph, outcome if applied per resource, final outcomes, triggered)
        let cases: &[(&[&str], &str, &str, &[&str])] = &[
            (&["a", "b"], "UF", "UF", &[]),
            (&["a:b", "b"], "UF", "SF", &[]),
            // transitive through requires
            (&["a:b", "b:c", "c"], "UUF", "SSF", &[]),
            (&["a:b", "b:c", "c", "d"], "UUFC", "SSFC", &[]),
            // diamond: one failing branch skips the join only
            (&["d:b,c", "b:a", "c:a", "a"], "UFUU", "SFUU", &[]),
            (&["d:b,c", "b:a", "c:a", "a"], "UUUF", "SSSF", &[]),
            // notify does not carry failure
            (&["f::s", "s"], "FU", "FU", &[]),
            (&["f::s", "s"], "CU", "CU", &["s"]),
            (&["f::s", "s"], "UU", "UU", &[]),
            // two notifiers, one changed
            (&["f::s", "g::s", "s"], "UCU", "UCU", &["s"]),
            // a skipped service is not triggered
            (&["f::s", "s:p", "p"], "CUF", "CSF", &[]),
            // a skipped notifier does not trigger
            (&["f:p:s", "s", "p"], "CUF", "SUF", &[]),
            // a notified command that fails skips what requires it
            (&["f::c", "c", "x:c"], "CFU", "CFS", &["c"]),
        ];
        for (spec, raw, expected, triggered) in cases {
            let (got, got_triggered) = run(spec, raw);
            assert_eq!(got, *expected, "{spec:?} {raw}");
            assert_eq!(got_triggered, *triggered, "{spec:?} {raw}");
        }
    }

    #[test]
    fn next_names_the_blocker_and_the_triggers() {
        let g = graph(&["f::s", "g::s", "s:p", "p"]);
        use Outcome::*;
        assert_eq!(
            next(
                &g,
                2,
                &[Some(Changed), Some(Changed), None, Some(Unchanged)]
            ),
            Step::Apply {
                triggered_by: vec![0, 1]
            }
        );
        assert_eq!(
            next(&g, 2, &[Some(Changed), None, None, Some(Failed)]),
            Step::Skip { because: 3 }
        );
        // Out-of-range indexes do not panic.
        assert_eq!(
            next(&g, 99, &[]),
            Step::Apply {
                triggered_by: vec![]
            }
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A random DAG: edges only from a lower to a higher "rank", ranks shuffled
    /// against document order so the order must really be computed.
    fn dag() -> impl Strategy<Value = Graph> {
        (1usize..12)
            .prop_flat_map(|n| {
                (
                    Just(n),
                    Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                    prop::collection::vec((0..n, 0..n, any::<bool>()), 0..30),
                )
            })
            .prop_map(|(n, rank, edges)| {
                let mut graph = Graph {
                    names: (0..n).map(|i| format!("r{i}")).collect(),
                    requires: vec![Vec::new(); n],
                    notify: vec![Vec::new(); n],
                };
                for (x, y, is_notify) in edges {
                    // Make `first` run before `second`.
                    let (first, second) = if rank[x] < rank[y] { (x, y) } else { (y, x) };
                    if first == second {
                        continue;
                    }
                    if is_notify {
                        graph.notify[first].push(second);
                    } else {
                        graph.requires[second].push(first);
                    }
                }
                graph
            })
    }

    proptest! {
        #[test]
        fn any_dag_has_an_order_respecting_every_edge(graph in dag()) {
            let order = graph.order().unwrap();
            let mut position = vec![usize::MAX; graph.names.len()];
            for (p, &i) in order.iter().enumerate() {
                prop_assert_eq!(position[i], usize::MAX, "listed twice");
                position[i] = p;
            }
            prop_assert!(position.iter().all(|&p| p != usize::MAX), "every resource listed");
            for (i, required) in graph.requires.iter().enumerate() {
                for &r in required {
                    prop_assert!(position[r] < position[i]);
                }
            }
            for (i, notified) in graph.notify.iter().enumerate() {
                for &n in notified {
                    prop_assert!(position[i] < position[n]);
                }
            }
        }

        #[test]
        fn a_back_edge_is_reported_as_a_real_cycle(graph in dag(), pick in any::<prop::sample::Index>()) {
            let order = graph.order().unwrap();
            // Require the first resource of some edge-free pair in reverse: if
            // the resource last in the order requires the first, and the order
            // had a path between them, there is a cycle; check any reported
            // cycle is made of real edges.
            let mut graph = graph;
            let (first, last) = (order[0], order[pick.index(order.len())]);
            graph.requires[first].push(last);
            if let Err(cycle) = graph.order() {
                let index = |name: &String| graph.names.iter().position(|n| n == name).unwrap();
                prop_assert_eq!(cycle.path.first(), cycle.path.last());
                for pair in cycle.path.windows(2) {
                    let (a, b) = (index(&pair[0]), index(&pair[1]));
                    prop_assert!(graph.requires[b].contains(&a) || graph.notify[a].contains(&b),
                        "{} -> {} is not an edge", pair[0], pair[1]);
                }
            }
        }
    }
}
