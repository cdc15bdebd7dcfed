//! The real-API-server suite: kvault's CRDs, examples, operator and Helm chart against a
//! local Kubernetes v1.36 control plane (etcd, kube-apiserver, kube-controller-manager on
//! 127.0.0.1, no kubelet: pods are stored, never run).
//!
//! `cargo test --test k8s [FILTER…]` starts the control plane with a fresh etcd
//! (`scripts/k8s-control-plane start`: binaries from `KVAULT_K8S_BIN`, `../shared/k8s` or
//! the official release downloaded into a cache), runs every test whose name contains one
//! of the filters (all without one), one after the other, and stops the control plane at
//! the end. It never skips: without the binaries it fails with one line saying what it
//! needs. `scripts/test` runs it. What only a mock can check (exact request shapes) stays in
//! `src/operator/mock_api_server_tests.rs`.

mod chart;
mod cluster;
mod defects;
mod examples;
mod operator;
mod scale;
mod schema;
mod served;
mod sync;
mod workload_identity;

use cluster::Cluster;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

type TestFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
type TestFn = fn(Cluster) -> TestFuture;

/// Every test, in the order they run (each applies the CRDs it needs itself, so any
/// subset runs on its own).
const TESTS: &[(&str, TestFn)] = &[
    (
        "crds_apply_both_ways_without_warnings_and_are_established",
        |c| Box::pin(schema::crds_apply_both_ways(c)),
    ),
    ("bad_objects_are_refused_with_the_rules_message", |c| {
        Box::pin(schema::bad_objects_are_refused(c))
    }),
    ("refused_transitions_and_allowed_growth", |c| {
        Box::pin(schema::transitions(c))
    }),
    ("example_pods_pass_restricted_pod_security", |c| {
        Box::pin(examples::pods_pass_restricted(c))
    }),
    ("examples_apply_cleanly_in_any_order", |c| {
        Box::pin(examples::apply_in_any_order(c))
    }),
    ("operator_reconciles_both_authorization_modes", |c| {
        Box::pin(operator::reconciles_both_modes(c))
    }),
    (
        "operator_pushes_the_policy_to_a_served_vault_and_syncs_secrets",
        |c| Box::pin(served::served_vault_gets_its_policy(c)),
    ),
    ("operator_soft_deletes_and_recovers_a_vault", |c| {
        Box::pin(operator::soft_delete_and_recover(c))
    }),
    ("operator_lets_a_namespace_deletion_complete", |c| {
        Box::pin(operator::namespace_deletion_completes(c))
    }),
    ("operator_says_refused_growth_and_unschedulable_pods", |c| {
        Box::pin(defects::refused_growth_and_unschedulable_pods_are_said(c))
    }),
    (
        "operator_grants_follow_their_vault_without_finalizer_warnings",
        |c| {
            Box::pin(defects::grants_follow_their_vault_and_no_finalizer_warning(
                c,
            ))
        },
    ),
    (
        "operator_keeps_a_protected_vault_when_its_namespace_is_deleted",
        |c| Box::pin(defects::a_protected_vault_survives_its_namespace(c)),
    ),
    (
        "operator_purges_kept_objects_after_the_retention_period",
        |c| {
            Box::pin(defects::kept_objects_are_purged_after_the_retention_period(
                c,
            ))
        },
    ),
    ("operator_reconciles_200_vaults", |c| {
        Box::pin(scale::two_hundred_vaults(c))
    }),
    ("operator_leader_takeover_after_kill_9", |c| {
        Box::pin(operator::leader_takeover(c))
    }),
    ("chart_installs_and_uninstalls_with_helm", |c| {
        Box::pin(chart::install_and_uninstall(c))
    }),
];

/// Longest a test may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

fn main() -> ExitCode {
    // libtest-style flags (`--quiet`, `--nocapture`, …) are accepted and ignored.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&(&str, TestFn)> = TESTS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f)))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    if selected.is_empty() {
        eprintln!("k8s suite: no test matches {filters:?}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("k8s suite: no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let control_plane = match cluster::ControlPlane::start() {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("k8s suite: cannot start the control plane: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "control plane ready in {:.1}s ({})",
        started.elapsed().as_secs_f64(),
        control_plane.kubeconfig.display()
    );
    let mut failed = vec![];
    runtime.block_on(async {
        let cluster = match Cluster::connect(&control_plane).await {
            Ok(c) => c,
            Err(e) => {
                failed.push(format!("connect: {e:#}"));
                return;
            }
        };
        println!("running {} tests", selected.len());
        for (name, test) in selected {
            let t0 = Instant::now();
            let task = tokio::spawn(test(cluster.clone()));
            let outcome = match tokio::time::timeout(TEST_TIMEOUT, task).await {
                Err(_) => Err(format!("timed out after {}s", TEST_TIMEOUT.as_secs())),
                Ok(Err(join)) => Err(format!("panicked: {join}")),
                Ok(Ok(Err(e))) => Err(format!("{e:#}")),
                Ok(Ok(Ok(()))) => Ok(()),
            };
            let secs = t0.elapsed().as_secs_f64();
            match outcome {
                Ok(()) => println!("test {name} ... ok ({secs:.1}s)"),
                Err(e) => {
                    println!("test {name} ... FAILED ({secs:.1}s)\n    {e}");
                    failed.push(format!("{name}: {e}"));
                }
            }
        }
    });
    drop(control_plane);
    if failed.is_empty() {
        println!(
            "\nk8s suite: all passed in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        ExitCode::SUCCESS
    } else {
        println!("\nk8s suite: {} failed:", failed.len());
        for f in &failed {
            println!("    {f}");
        }
        ExitCode::FAILURE
    }
}
