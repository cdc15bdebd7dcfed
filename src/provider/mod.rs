//! `kvault provider`: the Secrets Store CSI Driver provider (being built; see issue 7).

/// Options of `kvault provider`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProviderOptions {}

pub async fn run(_opts: ProviderOptions) -> anyhow::Result<()> {
    anyhow::bail!("kvault provider is not available in this build yet")
}
