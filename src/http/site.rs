//! What the web pages know of the configuration, resolved by the agent at start-up: the
//! http layer never sees the whole `Config`, only this.

use std::path::PathBuf;

/// A threshold rule as the pages draw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub rule: String,
    pub sensor: String,
    pub above: Option<f64>,
    pub below: Option<f64>,
}

/// One asset as the pages show it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SiteAsset {
    pub id: String,
    pub sensors: Vec<String>,
    pub limits: Vec<Limit>,
    /// The model's alarm name and its file, when the asset has a model.
    pub model: Option<(String, PathBuf)>,
}

/// A Modbus device and the sensors it reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SiteDevice {
    pub name: String,
    pub sensors: Vec<String>,
}

/// What the pages know of the configuration, resolved by the agent at start-up (the
/// http layer never sees the whole `Config`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Site {
    pub assets: Vec<SiteAsset>,
    pub devices: Vec<SiteDevice>,
    /// `storage.raw_retention`, ms.
    pub raw_retention_ms: i64,
    /// `[[forward]]` destination names.
    pub forwards: Vec<String>,
}

impl Site {
    /// Every limit drawn on `sensor`'s plots.
    pub fn limits_of(&self, sensor: &str) -> Vec<&Limit> {
        self.assets
            .iter()
            .flat_map(|a| &a.limits)
            .filter(|l| l.sensor == sensor)
            .collect()
    }
}
