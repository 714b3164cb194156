{{/* Chart name. */}}
{{- define "edgefabric.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already holds the chart name. */}}
{{- define "edgefabric.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "edgefabric.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "edgefabric.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the provider pods. */}}
{{- define "edgefabric.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edgefabric.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: provider
{{- end }}

{{/* The provider's ServiceAccount. */}}
{{- define "edgefabric.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "edgefabric.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the bootstrap token Secret. */}}
{{- define "edgefabric.tokenSecretName" -}}
{{- printf "%s-token-%s" (include "edgefabric.fullname" .) .Values.bootstrapToken.account | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Names agents dial the hub by: the Service's DNS names and hub.hosts. */}}
{{- define "edgefabric.hubHosts" -}}
{{- $svc := printf "%s-hub" (include "edgefabric.fullname" .) }}
{{- $hosts := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) }}
{{- concat $hosts .Values.hub.hosts | uniq | join "," }}
{{- end }}
