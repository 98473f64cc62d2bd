{{/* The operator's name: its Deployment, ServiceAccount, Service, RBAC and Lease. */}}
{{- define "wharf.fullname" -}}
{{- default (printf "%s-operator" .Release.Name) .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wharf.serviceAccountName" -}}
{{- default (include "wharf.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "wharf.operatorImage" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels of everything the chart installs. */}}
{{- define "wharf.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wharf
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Labels of the operator's own objects. */}}
{{- define "wharf.labels" -}}
{{ include "wharf.commonLabels" . }}
{{ include "wharf.selectorLabels" . }}
{{- end -}}

{{/* Fixed once installed: a Deployment's selector is immutable. */}}
{{- define "wharf.selectorLabels" -}}
app.kubernetes.io/name: wharf-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
