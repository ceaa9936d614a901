{{- define "flashcards-operator.name" -}}flashcards-operator{{- end -}}

{{- define "flashcards-operator.labels" -}}
app.kubernetes.io/name: flashcards-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "flashcards-operator.selector" -}}
app.kubernetes.io/name: flashcards-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
