//! Every name the provider shares with Cluster API, clusterctl and the cluster: condition
//! types and reasons, label and annotation keys, the finalizer, the field manager and the
//! data Secret's type and keys. Kept in one place so the contract spelling lives once.

/// API group of our kinds (the conventional group for bootstrap providers).
pub const GROUP: &str = "bootstrap.cluster.x-k8s.io";
/// Our API version.
pub const VERSION: &str = "v1alpha1";
/// Kind of the bootstrap config.
pub const KIND: &str = "SiteBootstrapConfig";
/// Kind of the bootstrap config template.
pub const TEMPLATE_KIND: &str = "SiteBootstrapConfigTemplate";

/// CAPI core group (Machine, Cluster).
pub const CAPI_GROUP: &str = "cluster.x-k8s.io";
/// CAPI API versions we understand, preferred first.
pub const CAPI_VERSIONS: [&str; 2] = ["v1beta2", "v1beta1"];

/// CRD label naming our versions that implement CAPI contract v1beta2.
pub const CONTRACT_LABEL_V1BETA2: &str = "cluster.x-k8s.io/v1beta2";
/// CRD label naming our versions that implement CAPI contract v1beta1.
pub const CONTRACT_LABEL_V1BETA1: &str = "cluster.x-k8s.io/v1beta1";
/// clusterctl provider label value.
pub const PROVIDER_LABEL: &str = "cluster.x-k8s.io/provider";
/// clusterctl provider name.
pub const PROVIDER_NAME: &str = "bootstrap-siteboot";

/// Label CAPI puts on configs and we put on the data Secret.
pub const CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";
/// Annotation pausing reconciliation of one object.
pub const PAUSED_ANNOTATION: &str = "cluster.x-k8s.io/paused";
/// Label selecting which objects one controller instance handles (`--watch-filter`).
pub const WATCH_FILTER_LABEL: &str = "cluster.x-k8s.io/watch-filter";
/// Annotation on the data Secret naming the public id of the token inside it, so a
/// status lost between Secret creation and status patch (or by `clusterctl move`) can be
/// rebuilt from the Secret.
pub const TOKEN_ID_ANNOTATION: &str = "bootstrap.cluster.x-k8s.io/siteboot-token-id";

/// Finalizer that revokes an unused token when the config is deleted.
pub const FINALIZER: &str = "bootstrap.cluster.x-k8s.io/siteboot";
/// Field manager for every write.
pub const FIELD_MANAGER: &str = "siteboot-provider";

/// Type CAPI uses for Secrets it (or a provider) generated.
pub const DATA_SECRET_TYPE: &str = "cluster.x-k8s.io/secret";
/// Data Secret key holding the bootstrap payload (the contract's key).
pub const DATA_SECRET_VALUE_KEY: &str = "value";
/// Data Secret key holding the payload format (CABPK convention).
pub const DATA_SECRET_FORMAT_KEY: &str = "format";
/// Default key in the credentials Secret.
pub const DEFAULT_CREDENTIALS_KEY: &str = "token";
/// Default key of a CA bundle Secret/ConfigMap.
pub const DEFAULT_CA_KEY: &str = "ca.crt";

/// Condition types.
pub mod condition {
    /// Summary of the others; mirrored by CAPI into `BootstrapConfigReady`.
    pub const READY: &str = "Ready";
    /// The data Secret exists and holds a live token.
    pub const DATA_SECRET_AVAILABLE: &str = "DataSecretAvailable";
    /// Reconciliation is paused.
    pub const PAUSED: &str = "Paused";
    /// The device booted with this data redeemed its token.
    pub const REGISTERED: &str = "Registered";
}

/// Condition reasons (CamelCase, CAPI style).
pub mod reason {
    pub const READY: &str = "Ready";
    pub const NOT_READY: &str = "NotReady";
    pub const AVAILABLE: &str = "Available";
    pub const NOT_AVAILABLE: &str = "NotAvailable";
    pub const PAUSED: &str = "Paused";
    pub const NOT_PAUSED: &str = "NotPaused";
    pub const WAITING_FOR_OWNER: &str = "WaitingForOwner";
    pub const WAITING_FOR_CLUSTER: &str = "WaitingForCluster";
    pub const WAITING_FOR_CLUSTER_INFRASTRUCTURE: &str = "WaitingForClusterInfrastructure";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const REGISTRATION_SERVICE_UNAVAILABLE: &str = "RegistrationServiceUnavailable";
    pub const REGISTRATION_REJECTED: &str = "RegistrationServiceRejected";
    pub const DATA_SECRET_GENERATION_FAILED: &str = "DataSecretGenerationFailed";
    pub const INTERNAL_ERROR: &str = "InternalError";
    pub const REGISTERED: &str = "Registered";
    pub const WAITING_FOR_DEVICE: &str = "WaitingForDevice";
    pub const TOKEN_EXPIRED: &str = "TokenExpired";
}
