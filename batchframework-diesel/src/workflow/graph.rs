//! The shape of a workflow, checked before anything is stored: names unique, dependencies
//! naming steps of the workflow, and no cycle. Pure, and unit-tested without a database.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};

/// The steps in an order where each comes after every step it depends on (the order given,
/// wherever that already holds), as indexes into `steps`: (name, names depended on).
pub(crate) fn run_order(steps: &[(&str, &[String])]) -> Result<Vec<usize>> {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (name, _)) in steps.iter().enumerate() {
        if index.insert(name, i).is_some() {
            return Err(Error::DuplicateStep {
                step: (*name).to_owned(),
            });
        }
    }
    let mut depends_on: Vec<BTreeSet<usize>> = Vec::with_capacity(steps.len());
    for (name, after) in steps {
        let mut set = BTreeSet::new();
        for dependency in after.iter() {
            let Some(&at) = index.get(dependency.as_str()) else {
                return Err(Error::UnknownStep {
                    step: (*name).to_owned(),
                    dependency: dependency.clone(),
                });
            };
            set.insert(at);
        }
        depends_on.push(set);
    }
    // Depth-first, in the order given: a step is placed once all it depends on are. A step met
    // again while its own dependencies are being placed closes a cycle.
    let mut order = Vec::with_capacity(steps.len());
    let mut state = vec![Mark::New; steps.len()];
    for start in 0..steps.len() {
        let mut path: Vec<(usize, Vec<usize>)> = Vec::new();
        if state[start] == Mark::Placed {
            continue;
        }
        state[start] = Mark::OnPath;
        path.push((start, depends_on[start].iter().rev().copied().collect()));
        while let Some((step, pending)) = path.last_mut() {
            let step = *step;
            match pending.pop() {
                Some(next) => match state[next] {
                    Mark::Placed => {}
                    Mark::OnPath => {
                        let from = path.iter().position(|(s, _)| *s == next).unwrap_or(0);
                        // The path runs from each step to one it depends on.
                        let cycle: Vec<String> = path[from..]
                            .iter()
                            .map(|(s, _)| steps[*s].0.to_owned())
                            .collect();
                        return Err(Error::DependencyCycle { steps: cycle });
                    }
                    Mark::New => {
                        state[next] = Mark::OnPath;
                        path.push((next, depends_on[next].iter().rev().copied().collect()));
                    }
                },
                None => {
                    state[step] = Mark::Placed;
                    order.push(step);
                    path.pop();
                }
            }
        }
    }
    Ok(order)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    New,
    OnPath,
    Placed,
}

#[cfg(test)]
// Tests fail by panicking; unwrap is how they say so.
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn order(steps: &[(&str, &[&str])]) -> Result<Vec<&'static str>> {
        let owned: Vec<(String, Vec<String>)> = steps
            .iter()
            .map(|(n, a)| (n.to_string(), a.iter().map(|s| s.to_string()).collect()))
            .collect();
        let view: Vec<(&str, &[String])> = owned
            .iter()
            .map(|(n, a)| (n.as_str(), a.as_slice()))
            .collect();
        let names: Vec<&'static str> = steps
            .iter()
            .map(|(n, _)| &*Box::leak(n.to_string().into_boxed_str()))
            .collect();
        Ok(run_order(&view)?.into_iter().map(|i| names[i]).collect())
    }

    #[test]
    fn keeps_the_given_order_when_it_runs() {
        let steps: &[(&str, &[&str])] =
            &[("a", &[]), ("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])];
        assert_eq!(order(steps).unwrap(), ["a", "b", "c", "d"]);
    }

    #[test]
    fn places_dependencies_first() {
        let steps: &[(&str, &[&str])] =
            &[("d", &["b", "c"]), ("c", &["a"]), ("b", &["a"]), ("a", &[])];
        assert_eq!(order(steps).unwrap(), ["a", "c", "b", "d"]);
    }

    #[test]
    fn refuses_a_cycle_and_names_it_in_order() {
        let steps: &[(&str, &[&str])] = &[
            ("start", &[]),
            ("a", &["c"]),
            ("b", &["a"]),
            ("c", &["b", "start"]),
        ];
        match order(steps).unwrap_err() {
            Error::DependencyCycle { steps } => assert_eq!(steps, ["a", "c", "b"]),
            other => panic!("{other}"),
        }
        let own: &[(&str, &[&str])] = &[("a", &["a"])];
        assert!(matches!(order(own), Err(Error::DependencyCycle { steps }) if steps == ["a"]));
    }

    #[test]
    fn refuses_unknown_and_repeated_names() {
        let unknown: &[(&str, &[&str])] = &[("a", &["nope"])];
        assert!(
            matches!(order(unknown), Err(Error::UnknownStep { dependency, .. }) if dependency == "nope")
        );
        let twice: &[(&str, &[&str])] = &[("a", &[]), ("a", &[])];
        assert!(matches!(order(twice), Err(Error::DuplicateStep { step }) if step == "a"));
    }

    #[test]
    fn a_long_chain_does_not_recurse() {
        let names: Vec<String> = (0..100_000).map(|i| format!("s{i}")).collect();
        let after: Vec<Vec<String>> = (0..100_000)
            .map(|i| {
                if i == 0 {
                    vec![]
                } else {
                    vec![names[i - 1].clone()]
                }
            })
            .collect();
        // Given last-first, the walk goes 100,000 steps deep.
        let view: Vec<(&str, &[String])> = (0..100_000)
            .rev()
            .map(|i| (names[i].as_str(), after[i].as_slice()))
            .collect();
        let placed = run_order(&view).unwrap();
        assert_eq!(placed.first(), Some(&99_999));
        assert_eq!(placed.len(), 100_000);
    }
}
