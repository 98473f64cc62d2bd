//! The decision, purely: what every resource asked of the nodes, the admin's
//! policy, and who came first → what each node must hold ([`NodePlan`]) and
//! each resource's answer ([`Verdict`]).
//!
//! All or nothing per resource: a resource any of whose hosts is refused
//! gets none, so the nodes never carry half of what it asked. A host has one
//! owner, the oldest granted resource that claims it (by creation time, then
//! kind, namespace and name), and when that owner goes, the next one takes it
//! at the next decision.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use crate::crd::conditions::reasons;
use crate::names::OwnerKind;

use super::policy::Policy;
pub use crate::node_agent::files::{NodePlan, PlanEntry, PlanHost};

/// A resource, as the decision names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// Its kind.
    pub kind: OwnerKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// What one resource with `nodeAccess.enabled` asks of the nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Which resource.
    pub key: Key,
    /// `metadata.creationTimestamp`: the older claim wins a host.
    pub created: Option<Timestamp>,
    /// `<svc>.<ns>.svc.<domain>`.
    pub host_name: String,
    /// `<host_name>:<port>`, as in image references.
    pub host: String,
    /// `http(s)://<host>`.
    pub url: String,
    /// The Service's ClusterIP, once allocated.
    pub cluster_ip: Option<String>,
    /// A mirror's upstream hosts (containerd's `ns`); empty for a Registry.
    pub upstreams: Vec<String>,
    /// The PEM the nodes trust for an https `url`.
    pub ca_pem: Option<String>,
}

/// The answer to one claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every node maps these hosts to the resource.
    Granted {
        /// The hosts, the resource's own first.
        hosts: Vec<String>,
    },
    /// Granted, but the Service has no ClusterIP yet.
    WaitingForClusterIp,
    /// Refused; the nodes carry nothing of this resource.
    Refused {
        /// [`reasons::NODE_ACCESS_NOT_ALLOWED`] or [`reasons::HOST_CLAIMED`].
        reason: &'static str,
        /// For people.
        message: String,
    },
}

/// The outcome of one decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// What the nodes hold.
    pub plan: NodePlan,
    /// Each claim's answer.
    pub verdicts: BTreeMap<Key, Verdict>,
}

/// Whether `host` (`name[:port]`) lies in `namespace`'s own cluster DNS.
fn in_own_namespace(host: &str, namespace: &str, cluster_domain: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    name.strip_suffix(&format!(".{namespace}.svc.{cluster_domain}"))
        .is_some_and(|svc| !svc.is_empty() && !svc.contains('.'))
}

/// The hosts of `claim` the policy refuses, or why none may be mapped at all.
fn refusal(policy: &Policy, cluster_domain: &str, claim: &Claim) -> Option<String> {
    let ns = &claim.key.namespace;
    if !policy.own_names {
        return Some(format!(
            "the cluster's node-access policy lets no resource map its in-cluster name on the nodes ({} asked for {})",
            claim.key, claim.host
        ));
    }
    let refused: Vec<&str> = claim
        .upstreams
        .iter()
        .filter(|h| !in_own_namespace(h, ns, cluster_domain) && !policy.allows_upstream(ns, h))
        .map(String::as_str)
        .collect();
    (!refused.is_empty()).then(|| {
        format!(
            "the cluster's node-access policy does not let namespace {ns} redirect the nodes' pulls of {}; \
             a cluster admin can allow it in the wharf chart's nodeAccess.policy.upstreams",
            refused.join(", ")
        )
    })
}

/// Decides every claim. Deterministic: the same claims in any order give the same decision.
pub fn decide(policy: &Policy, cluster_domain: &str, claims: &[Claim]) -> Decision {
    let mut ordered: Vec<&Claim> = claims.iter().collect();
    ordered.sort_by(|a, b| (a.created, &a.key).cmp(&(b.created, &b.key)));
    let mut owners: BTreeMap<&str, &Key> = BTreeMap::new();
    let mut decision = Decision::default();
    for claim in ordered {
        let hosts: Vec<&str> =
            std::iter::once(claim.host.as_str()).chain(claim.upstreams.iter().map(String::as_str)).collect();
        let verdict = if let Some(message) = refusal(policy, cluster_domain, claim) {
            Verdict::Refused { reason: reasons::NODE_ACCESS_NOT_ALLOWED, message }
        } else if let Some((host, owner)) = hosts.iter().find_map(|h| owners.get(h).map(|o| (*h, *o))) {
            Verdict::Refused {
                reason: reasons::HOST_CLAIMED,
                message: format!(
                    "{host} is already mapped on the nodes for {owner}, which is older; \
                     this resource takes it when that one lets it go"
                ),
            }
        } else {
            for h in &hosts {
                owners.insert(h, &claim.key);
            }
            match &claim.cluster_ip {
                None => Verdict::WaitingForClusterIp,
                Some(ip) => {
                    add_to_plan(&mut decision.plan, claim, ip);
                    Verdict::Granted { hosts: hosts.iter().map(|h| h.to_string()).collect() }
                }
            }
        };
        decision.verdicts.insert(claim.key.clone(), verdict);
    }
    decision.plan.entries.sort_by(|a, b| a.host.cmp(&b.host));
    decision.plan.hosts.sort_by(|a, b| a.host.cmp(&b.host));
    decision
}

fn add_to_plan(plan: &mut NodePlan, claim: &Claim, ip: &str) {
    let owner = format!("{}/{}", claim.key.namespace, claim.key.name);
    let is_mirror = claim.key.kind == OwnerKind::RegistryMirror;
    plan.entries.push(PlanEntry { ip: ip.to_string(), host: claim.host_name.clone(), owner: owner.clone() });
    let route = |host: &str, mirror: bool| PlanHost {
        host: host.to_string(),
        owner: owner.clone(),
        url: claim.url.clone(),
        mirror,
        push: !is_mirror,
        ca_pem: claim.ca_pem.clone().filter(|_| claim.url.starts_with("https://")),
    };
    plan.hosts.push(route(&claim.host, false));
    for upstream in &claim.upstreams {
        plan.hosts.push(route(upstream, true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "cluster.local";

    fn claim(kind: OwnerKind, ns: &str, name: &str, age: i64, upstreams: &[&str]) -> Claim {
        let host_name = format!("{name}.{ns}.svc.{DOMAIN}");
        Claim {
            key: Key { kind, namespace: ns.into(), name: name.into() },
            created: Some(Timestamp::from_second(1_700_000_000 + age).expect("time")),
            host: format!("{host_name}:5000"),
            url: format!("http://{host_name}:5000"),
            host_name,
            cluster_ip: Some(format!("198.19.0.{}", 10 + age)),
            upstreams: upstreams.iter().map(|s| s.to_string()).collect(),
            ca_pem: None,
        }
    }

    fn key(c: &Claim) -> Key {
        c.key.clone()
    }

    fn reason(d: &Decision, c: &Claim) -> &'static str {
        match &d.verdicts[&key(c)] {
            Verdict::Refused { reason, .. } => reason,
            Verdict::Granted { .. } => "Granted",
            Verdict::WaitingForClusterIp => "Waiting",
        }
    }

    #[test]
    fn a_tenant_cannot_redirect_docker_io_by_default() {
        let tenant = claim(OwnerKind::RegistryMirror, "team-a", "hub", 1, &["docker.io"]);
        let d = decide(&Policy::default(), DOMAIN, std::slice::from_ref(&tenant));
        assert_eq!(reason(&d, &tenant), reasons::NODE_ACCESS_NOT_ALLOWED);
        assert_eq!(d.plan, NodePlan::default(), "the nodes carry nothing of a refused resource");
        let Verdict::Refused { message, .. } = &d.verdicts[&key(&tenant)] else { unreachable!() };
        assert!(message.contains("namespace team-a") && message.contains("docker.io"), "{message}");
    }

    #[test]
    fn the_policy_grants_a_namespace_a_host() {
        let policy = Policy::parse("upstreams: [{namespaces: [team-a], hosts: [docker.io]}]").expect("policy");
        let a = claim(OwnerKind::RegistryMirror, "team-a", "hub", 1, &["docker.io"]);
        let b = claim(OwnerKind::RegistryMirror, "team-b", "hub", 2, &["docker.io"]);
        let d = decide(&policy, DOMAIN, &[a.clone(), b.clone()]);
        assert_eq!(reason(&d, &a), "Granted");
        assert_eq!(reason(&d, &b), reasons::NODE_ACCESS_NOT_ALLOWED);
        let docker = d.plan.hosts.iter().find(|h| h.host == "docker.io").expect("docker.io routed");
        assert_eq!((docker.owner.as_str(), docker.mirror, docker.push), ("team-a/hub", true, false));
        assert_eq!(docker.url, "http://hub.team-a.svc.cluster.local:5000");
    }

    #[test]
    fn own_names_and_own_namespace_upstreams_need_no_grant() {
        let r = claim(OwnerKind::Registry, "team-a", "reg", 1, &[]);
        let m = claim(OwnerKind::RegistryMirror, "team-a", "hub", 2, &["up.team-a.svc.cluster.local:5000"]);
        let other = claim(OwnerKind::RegistryMirror, "team-b", "hub", 3, &["up.team-a.svc.cluster.local:5000"]);
        let d = decide(&Policy::default(), DOMAIN, &[r.clone(), m.clone(), other.clone()]);
        assert_eq!(reason(&d, &r), "Granted");
        assert_eq!(reason(&d, &m), "Granted");
        assert_eq!(reason(&d, &other), reasons::NODE_ACCESS_NOT_ALLOWED, "another namespace's name is not own");
        let none = Policy::parse("ownNames: false").expect("policy");
        assert_eq!(reason(&decide(&none, DOMAIN, std::slice::from_ref(&r)), &r), reasons::NODE_ACCESS_NOT_ALLOWED);
        // A look-alike suffix is not the namespace's own DNS.
        assert!(!in_own_namespace("x.evil.team-a.svc.cluster.local", "team-a", DOMAIN));
        assert!(!in_own_namespace("team-a.svc.cluster.local", "team-a", DOMAIN));
        assert!(in_own_namespace("up.team-a.svc.cluster.local:5000", "team-a", DOMAIN));
    }

    #[test]
    fn the_oldest_claim_owns_a_host_and_the_next_takes_over() {
        let policy = Policy::parse("upstreams: [{namespaces: ['*'], hosts: [docker.io]}]").expect("policy");
        let old = claim(OwnerKind::RegistryMirror, "team-b", "hub", 1, &["docker.io"]);
        let new = claim(OwnerKind::RegistryMirror, "team-a", "hub", 2, &["docker.io", "ghcr.io"]);
        for claims in [[old.clone(), new.clone()], [new.clone(), old.clone()]] {
            let d = decide(&policy, DOMAIN, &claims);
            assert_eq!(reason(&d, &old), "Granted");
            assert_eq!(reason(&d, &new), reasons::NODE_ACCESS_NOT_ALLOWED, "ghcr.io is not granted");
        }
        let policy = Policy::parse("upstreams: [{namespaces: ['*'], hosts: [docker.io, ghcr.io]}]").expect("policy");
        let d = decide(&policy, DOMAIN, &[new.clone(), old.clone()]);
        assert_eq!(reason(&d, &new), reasons::HOST_CLAIMED);
        let Verdict::Refused { message, .. } = &d.verdicts[&key(&new)] else { unreachable!() };
        assert!(message.contains("docker.io") && message.contains("RegistryMirror team-b/hub"), "{message}");
        assert!(!d.plan.hosts.iter().any(|h| h.host == "ghcr.io"), "all or nothing: {:?}", d.plan.hosts);
        // The owner goes away: the next claimant takes the host.
        let d = decide(&policy, DOMAIN, std::slice::from_ref(&new));
        assert_eq!(reason(&d, &new), "Granted");
        assert!(d.plan.hosts.iter().any(|h| h.host == "docker.io" && h.owner == "team-a/hub"));
    }

    #[test]
    fn waiting_for_a_cluster_ip_holds_the_host_but_writes_nothing() {
        let mut r = claim(OwnerKind::Registry, "team-a", "reg", 1, &[]);
        r.cluster_ip = None;
        let d = decide(&Policy::default(), DOMAIN, std::slice::from_ref(&r));
        assert_eq!(d.verdicts[&key(&r)], Verdict::WaitingForClusterIp);
        assert_eq!(d.plan, NodePlan::default());
    }

    #[test]
    fn registry_plan_lines_and_ca_only_for_https() {
        let mut r = claim(OwnerKind::Registry, "team-a", "reg", 1, &[]);
        r.ca_pem = Some("PEM".into());
        let d = decide(&Policy::default(), DOMAIN, std::slice::from_ref(&r));
        assert_eq!(
            d.plan.entries,
            vec![PlanEntry {
                ip: "198.19.0.11".into(),
                host: "reg.team-a.svc.cluster.local".into(),
                owner: "team-a/reg".into()
            }]
        );
        assert_eq!(d.plan.hosts[0].ca_pem, None, "http needs no CA");
        assert!(d.plan.hosts[0].push && !d.plan.hosts[0].mirror);
        r.url = r.url.replace("http://", "https://");
        let d = decide(&Policy::default(), DOMAIN, std::slice::from_ref(&r));
        assert_eq!(d.plan.hosts[0].ca_pem.as_deref(), Some("PEM"));
    }
}
