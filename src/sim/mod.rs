//! PLACEHOLDER: the simulator owner replaces this file.
use crate::config::simulator::SimulatorConfig;

/// Error.
#[derive(Debug, thiserror::Error)]
#[error("sim")]
pub struct SimError;
/// Handle.
pub struct SimHandle;
impl SimHandle {
    /// Base URL.
    pub fn base_url(&self) -> String {
        String::new()
    }
    /// Address.
    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], 0).into()
    }
    /// Shutdown.
    pub async fn shutdown(self) {}
}
/// Start.
pub async fn start(_cfg: SimulatorConfig) -> Result<SimHandle, SimError> {
    Err(SimError)
}
/// CLI args placeholder.
pub mod args {
    /// Args.
    #[derive(clap::Args, Debug)]
    pub struct SimArgs {}
}
/// Run.
pub async fn run_cli(_a: args::SimArgs) -> anyhow::Result<()> {
    Ok(())
}
