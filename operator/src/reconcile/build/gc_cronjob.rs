//! The garbage-collection CronJob: `wharf-registry garbage-collect` against
//! the same config and storage as the registry.

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{Affinity, PodAffinity, PodAffinityTerm, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ObjectMeta;

use crate::names::{self, paths};

use super::super::validated::{Storage, ValidatedRegistry};
use super::deployment::{pod_labels, pod_spec, registry_container};
use super::meta::child_meta;

/// The CronJob, when a schedule is set (none with online collection, which
/// runs inside the registry; apply prunes a CronJob left from a schedule).
pub fn build_gc_cronjob(v: &ValidatedRegistry) -> Option<CronJob> {
    let gc = v.gc.as_ref()?;
    let schedule = v.gc_schedule()?.to_string();
    let mut container = registry_container(v);
    let mut args = vec!["garbage-collect".to_string(), format!("--min-age={}", gc.min_age)];
    if gc.delete_untagged {
        args.push("-m".into());
    }
    args.push(paths::CONFIG.into());
    container.args = Some(args);
    container.resources = v.pods.resources.clone();
    let mut spec = pod_spec(v, container);
    spec.restart_policy = Some("OnFailure".into());
    spec.affinity = match &v.storage {
        // A ReadWriteOnce claim is only mountable on the node the registry runs on.
        Storage::Claim { shared: false, .. } => Some(Affinity {
            pod_affinity: Some(PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(pod_labels(v)),
                        ..LabelSelector::default()
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..PodAffinityTerm::default()
                }]),
                ..PodAffinity::default()
            }),
            ..Affinity::default()
        }),
        _ => v.pods.affinity.clone(),
    };
    let mut labels = names::labels(v.kind, v.names.instance());
    labels.insert(names::LABEL_COMPONENT.into(), "garbage-collection".into());
    Some(CronJob {
        metadata: child_meta(v, v.names.gc_cronjob()),
        spec: Some(CronJobSpec {
            schedule,
            concurrency_policy: Some("Forbid".into()),
            successful_jobs_history_limit: Some(1),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                        spec: Some(spec),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    })
}
