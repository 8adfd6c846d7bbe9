//! Proves the test harness is real: the control plane is a real kube-apiserver with a working
//! controller manager and RBAC, and Postgres answers queries.
mod common;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Resource, ResourceExt};

#[tokio::test]
async fn kube_client_reads_server_version_1_37() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    let info = client.apiserver_version().await.expect("version");
    assert_eq!(info.major, "1");
    assert_eq!(info.minor, "37", "unexpected server version {info:?}");
    assert!(
        info.git_version.starts_with("v1.37."),
        "git version {}",
        info.git_version
    );
}

#[tokio::test]
async fn owned_configmap_is_garbage_collected_after_owner_deletion() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    let ns = common::fresh_namespace(&client, "gc").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let owner: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "owner"}, "data": {"k": "v"}
    }))
    .unwrap();
    let owner = cms.create(&PostParams::default(), &owner).await.unwrap();
    let owner_ref = owner.controller_owner_ref(&()).unwrap();
    let mut owned: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "owned"}, "data": {"k": "v"}
    }))
    .unwrap();
    owned.meta_mut().owner_references = Some(vec![owner_ref]);
    cms.create(&PostParams::default(), &owned).await.unwrap();

    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    common::wait_for(
        "the owned ConfigMap to be garbage-collected",
        Duration::from_secs(60),
        || {
            let cms = cms.clone();
            async move { cms.get_opt("owned").await.unwrap().is_none().then_some(()) }
        },
    )
    .await;
}

#[tokio::test]
async fn created_job_gets_a_pod_from_the_job_controller() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    let ns = common::fresh_namespace(&client, "job").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let job: Job = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "hello"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "example.invalid/none:1", "command": ["true"]}]
        }}}
    }))
    .unwrap();
    let job = jobs.create(&PostParams::default(), &job).await.unwrap();
    let uid = job.uid().unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let selector = format!("batch.kubernetes.io/controller-uid={uid}");
    let pod = common::wait_for(
        "the Job controller to create a pod",
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            let selector = selector.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .unwrap();
                list.items.into_iter().next()
            }
        },
    )
    .await;
    let owner = pod
        .owner_references()
        .first()
        .cloned()
        .expect("pod has an owner");
    assert_eq!(owner.kind, "Job");
    assert_eq!(owner.name, "hello");
}

#[tokio::test]
async fn service_account_without_rbac_is_forbidden_to_list_secrets() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    let ns = common::fresh_namespace(&client, "rbac").await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let sa: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "nobody"}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let token = request_token(&client, &ns, "nobody").await;

    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let sa_client = kube::Client::try_from(config).unwrap();
    let secrets: Api<Secret> = Api::namespaced(sa_client, &ns);
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "expected Forbidden, got {status:?}")
        }
        other => panic!("a ServiceAccount without RBAC listed Secrets: {other:?}"),
    }
}

/// Issues a short-lived token for a ServiceAccount through the TokenRequest API.
async fn request_token(client: &kube::Client, ns: &str, sa: &str) -> String {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let req: TokenRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600}
    }))
    .unwrap();
    let resp: TokenRequest = sas
        .create_subresource("token", sa, &PostParams::default(), &req)
        .await
        .unwrap();
    resp.status
        .and_then(|s| s.token)
        .expect("a token in the TokenRequest status")
}

#[tokio::test]
async fn a_query_runs_on_postgres() {
    let Some(db) = common::fresh_db().await else {
        return;
    };
    let (n, name): (i32, String) = sqlx::query_as("SELECT 40 + 2, current_database()::text")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 42);
    assert_eq!(name, db.name);
}
