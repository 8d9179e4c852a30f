//! Where an endpoint sits in its cluster (its priority and locality, and the health EDS or the
//! static config gives it), and the cluster's rules for spreading load over priorities and
//! localities.

use std::sync::Arc;

/// `locality`: region, zone and sub-zone, each empty when unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Locality {
    /// `region`.
    pub region: String,
    /// `zone`.
    pub zone: String,
    /// `sub_zone`.
    pub sub_zone: String,
}

/// What the endpoints of one `endpoints[]` entry (`LocalityLbEndpoints`) share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// `priority`: level 0 takes the load first; a lower level takes what the levels above
    /// cannot, as their health drops.
    pub priority: u32,
    /// `locality`.
    pub locality: Locality,
    /// The locality's `load_balancing_weight`: its share under `locality_weighted_lb_config`
    /// (`None`, unset: it takes no load there, as in Envoy).
    pub locality_weight: Option<u32>,
}

impl Placement {
    /// Priority 0, no locality: an endpoint that says nothing of where it is.
    pub fn unplaced() -> Arc<Placement> {
        Arc::new(Placement::default())
    }
}

/// An endpoint's `health_status`, as the config (or, later, EDS) gives it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EndpointHealth {
    /// `UNKNOWN` (the default) or `HEALTHY`.
    #[default]
    Healthy,
    /// `UNHEALTHY` or `TIMEOUT`: no load outside panic (`/failed_eds_health`).
    Unhealthy,
    /// `DRAINING`: excluded — it counts toward no level's health and takes no load outside
    /// panic (`/eds_status_draining`).
    Draining,
    /// `DEGRADED`: takes only the load the healthy hosts cannot (`/degraded_eds_health`).
    Degraded,
}

/// How a cluster spreads load over its priorities and localities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSpread {
    /// `load_assignment.policy.overprovisioning_factor` (percent, default 140): a level
    /// whose healthy share times this is 100 % or more takes all the load it is offered.
    pub overprovisioning_factor: u32,
    /// `load_assignment.policy.weighted_priority_health`: a level's health is its healthy
    /// hosts' share of its weight, not of its host count.
    pub weighted_priority_health: bool,
    /// `common_lb_config.locality_weighted_lb_config`: a locality is chosen by its weight
    /// (scaled by its health), then a host in it.
    pub locality_weighted: bool,
}

impl Default for LoadSpread {
    fn default() -> LoadSpread {
        LoadSpread {
            overprovisioning_factor: 140,
            weighted_priority_health: false,
            locality_weighted: false,
        }
    }
}
