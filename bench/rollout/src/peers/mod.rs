//! Flagger, Argo Rollouts and Kayenta's judges (the peers work item writes them).
