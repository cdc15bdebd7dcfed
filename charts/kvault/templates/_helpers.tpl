{{/* The chart's name, or nameOverride. */}}
{{- define "kvault.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-kvault", or "<release>" when the release name already contains the name. */}}
{{- define "kvault.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "kvault.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "kvault.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kvault
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The operator's pod labels. The vaults' NetworkPolicies (network.defaultAction: Deny) admit
the operator by the label app.kubernetes.io/name=kvault-operator in the operator's namespace
(src/operator/desired.rs, OPERATOR_POD_LABEL): keep it as it is.
*/}}
{{- define "kvault.operator.selectorLabels" -}}
app.kubernetes.io/name: kvault-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kvault.provider.selectorLabels" -}}
app.kubernetes.io/name: kvault-provider
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* repository:tag or repository@digest. */}}
{{- define "kvault.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "kvault.operator.serviceAccountName" -}}
{{- .Values.operator.serviceAccount.name -}}
{{- end -}}

{{/*
The token audiences of the Secrets Store CSI Driver. With workload identity (the default):
the one audience provider.tokenAudience, which the provider exchanges at the token service
for each vault's audience. Legacy (workloadIdentity.enabled=false): one per listed vault,
then extras (secretsStoreCsiDriver.vaults / extraAudiences, deprecated).
*/}}
{{- define "kvault.csi.audiences" -}}
{{- $out := list -}}
{{- if .Values.workloadIdentity.enabled -}}
{{- $out = append $out .Values.provider.tokenAudience -}}
{{- else -}}
{{- range .Values.secretsStoreCsiDriver.vaults -}}
{{- $out = append $out (printf "https://%s.%s.svc" .name .namespace) -}}
{{- end -}}
{{- range .Values.secretsStoreCsiDriver.extraAudiences -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- toJson (uniq $out) -}}
{{- end -}}

{{/* The workload-identity token service's authority (the operator's webhook Service, port 443). */}}
{{- define "kvault.identityAuthority" -}}
{{- printf "https://%s.%s.svc/adfs" (include "kvault.operator.webhookServiceName" .) .Release.Namespace -}}
{{- end -}}

{{- define "kvault.podSecurityContext.restricted" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The Service in front of the operator's HTTPS listener (the workload-identity webhook). */}}
{{- define "kvault.operator.webhookServiceName" -}}
{{- printf "%s-operator-webhook" (include "kvault.fullname" .) -}}
{{- end -}}
