//! 200 Vaults applied at once: every one gets its StatefulSet. Prints the time it took, the
//! operator's CPU time and peak RSS, and how long the cleanup took — figures for
//! docs/operator.md, measured in the same run, never asserted (a shared machine varies).

use crate::cluster::{Cluster, wait_for};
use crate::operator::{Operator, with_log};
use anyhow::Result;
use kube::api::{Api, ListParams};
use serde_json::json;
use std::time::{Duration, Instant};

const VAULTS: usize = 200;

/// User+system CPU seconds and peak resident memory (MiB) of a process, from /proc.
fn cpu_and_peak_rss(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((ticks as f64 / 100.0, hwm_kib / 1024.0))
}

pub async fn two_hundred_vaults(c: Cluster) -> Result<()> {
    c.crds().await?;
    let operator_ns = "kvault-suite-scale";
    let ns = "op-scale";
    c.namespace(operator_ns, json!({})).await?;
    c.namespace(ns, json!({})).await?;
    let mut operator = Operator::start_in(&c, operator_ns, "k8s-suite-scale")?;
    let result = async {
        // The operator is up (its CA published) before the clock starts.
        wait_for("the operator's kvault-ca", Duration::from_secs(30), || async {
            let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
                Api::namespaced(c.client.clone(), operator_ns);
            Ok(cms.get_opt("kvault-ca").await?.map(|_| ()))
        })
        .await?;
        let before = cpu_and_peak_rss(operator.pid());
        let t0 = Instant::now();
        for i in 0..VAULTS {
            c.apply(
                &json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "Vault",
                        "metadata": {"name": format!("v{i:03}"), "namespace": ns},
                        "spec": {"softDelete": {"purgeProtection": false}}}),
                false,
            )
            .await?;
        }
        let applied = t0.elapsed();
        let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> =
            Api::namespaced(c.client.clone(), ns);
        wait_for(
            &format!("{VAULTS} StatefulSets"),
            Duration::from_secs(150),
            || async {
                let n = sets.list_metadata(&ListParams::default()).await?.items.len();
                Ok((n == VAULTS).then_some(()))
            },
        )
        .await?;
        let all = t0.elapsed();
        let after = cpu_and_peak_rss(operator.pid());
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.client.clone());
        namespaces.delete(ns, &Default::default()).await?;
        let t1 = Instant::now();
        wait_for(
            &format!("namespace {ns} with {VAULTS} Vaults to be deleted"),
            Duration::from_secs(150),
            || async { Ok(namespaces.get_opt(ns).await?.is_none().then_some(())) },
        )
        .await?;
        let cleanup = t1.elapsed();
        let (cpu, rss) = match (before, after) {
            (Some((c0, _)), Some((c1, r))) => (format!("{:.1} s", c1 - c0), format!("{r:.0} MiB")),
            _ => ("?".into(), "?".into()),
        };
        println!(
            "    {VAULTS} Vaults: applied in {:.1} s, all StatefulSets after {:.1} s; operator CPU {cpu}, peak RSS {rss}; namespace deleted {:.1} s after the delete",
            applied.as_secs_f64(),
            all.as_secs_f64(),
            cleanup.as_secs_f64()
        );
        anyhow::Ok(())
    }
    .await;
    with_log(result, &mut [&mut operator])
}
