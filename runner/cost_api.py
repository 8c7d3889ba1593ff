"""REST API of the cost estimator: estimate a spec without running a job, list device profiles, a run's report."""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from experiments.models import Run
from runner import costs
from runner.engine import profiles as engine_profiles
from runner.models import DeviceProfile


class EstimateInputSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=100, required=False, help_text="a registry model name, e.g. resnet20")
    checkpoint = serializers.CharField(max_length=600, required=False,
                                       help_text="instead of model: '<run id>/<path>' of one of your checkpoints")
    dataset = serializers.CharField(max_length=100, required=False,
                                    help_text="a dataset name; sets the input shape and class count")
    input_shape = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False,
                                        min_length=1, max_length=4, help_text="one sample's shape, e.g. [3, 32, 32]")
    num_classes = serializers.IntegerField(required=False, min_value=1, max_value=100_000)
    model_options = serializers.DictField(required=False)
    bits = serializers.JSONField(required=False, help_text='{"default": [w, a], "layers": {"name or glob": [w, a]}}')
    profile = serializers.CharField(max_length=100, default=engine_profiles.DEFAULT_PROFILE)
    batch_size = serializers.IntegerField(default=1, min_value=1, max_value=costs.MAX_BATCH)

    def validate(self, attrs):
        if "checkpoint" in attrs:
            return attrs
        if "model" not in attrs:
            raise serializers.ValidationError({"model": "give a registry model or a checkpoint"})
        if "dataset" not in attrs and "input_shape" not in attrs:
            raise serializers.ValidationError({"dataset": "give a dataset or an input_shape"})
        return attrs


class CostLayerSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    input_shape = serializers.ListField(child=serializers.IntegerField(), allow_null=True)
    output_shape = serializers.ListField(child=serializers.IntegerField(), allow_null=True)
    params = serializers.IntegerField()
    macs = serializers.IntegerField(help_text="multiply-accumulates of counted ops (conv, matmul, attention)")
    flops = serializers.IntegerField(help_text="2 x MACs")
    effective_macs = serializers.FloatField(help_text="MACs that remain when zero weights are skipped")
    w_bits = serializers.IntegerField()
    a_bits = serializers.IntegerField()
    weight_bytes = serializers.FloatField()
    act_in_bytes = serializers.FloatField()
    act_out_bytes = serializers.FloatField()
    bytes = serializers.FloatField(help_text="memory traffic: inputs + outputs + weights at their bit widths")
    sparsity = serializers.FloatField(help_text="share of zero weights")
    bops = serializers.IntegerField(help_text="MACs x b_w x b_a")
    intensity = serializers.FloatField(help_text="FLOPs per byte")
    dtype = serializers.CharField(help_text="the profile's peak used for these bit widths")
    time_s = serializers.FloatField(help_text="roofline time: max(FLOPs/peak, bytes/bandwidth)")
    bound = serializers.ChoiceField(choices=["compute", "memory"])
    energy_j = serializers.FloatField()


class CostReportSerializer(serializers.Serializer):
    layers = CostLayerSerializer(many=True)
    totals = serializers.DictField(help_text="macs, flops, params, bops, bytes, latency_s, energy_j, ...")
    profile = serializers.DictField()
    counted_ops = serializers.CharField()
    notes = serializers.ListField(child=serializers.CharField())
    batch_size = serializers.IntegerField()
    input_shapes = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    mode = serializers.ChoiceField(choices=["meta", "real"])


class DeviceProfileOutputSerializer(serializers.ModelSerializer):
    ridge_points = serializers.SerializerMethodField(help_text="FLOP/byte where each dtype turns compute-bound")

    class Meta:
        model = DeviceProfile
        fields = ["name", "label", "kind", "peak_ops", "bandwidth", "energy", "measured", "measured_on", "notes",
                  "updated_at", "ridge_points"]

    def get_ridge_points(self, obj) -> dict[str, float]:
        return engine_profiles.ridge_points(obj.as_engine_profile()) if obj.bandwidth > 0 else {}


class CostHistorySerializer(serializers.Serializer):
    label = serializers.CharField()
    step = serializers.IntegerField(allow_null=True)
    macs = serializers.IntegerField(allow_null=True)
    bops = serializers.IntegerField(allow_null=True)
    profile = serializers.CharField(allow_null=True)
    path = serializers.CharField()
    created_at = serializers.DateTimeField()


class RunCostOutputSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    report = CostReportSerializer(allow_null=True)
    history = CostHistorySerializer(many=True, help_text="every cost report of the run, oldest first")
    sensitivity = serializers.DictField(allow_null=True)
    profiles = DeviceProfileOutputSerializer(many=True)


class CostEstimateApi(APIView):
    @extend_schema(
        operation_id="cost_estimate", request=EstimateInputSerializer, responses={200: CostReportSerializer},
        summary="Estimate MACs, BOPs, memory traffic, roofline latency and energy per layer, without a job",
        examples=[OpenApiExample("resnet20 at w4a8", value={
            "model": "resnet20", "dataset": "cifar10", "bits": {"default": [4, 8], "layers": {"fc": [8, 8]}},
            "profile": "a100", "batch_size": 1}, request_only=True)])
    def post(self, request):
        data = EstimateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "checkpoint" in values:
            report = costs.cost_estimate_checkpoint(owner=request.user, checkpoint=values["checkpoint"],
                                                    bits=values.get("bits"), profile=values["profile"],
                                                    batch_size=values["batch_size"])
        else:
            report = costs.cost_estimate_spec(**values)
        return Response(report)


class CostProfilesApi(APIView):
    @extend_schema(operation_id="cost_profiles_list", responses={200: DeviceProfileOutputSerializer(many=True)},
                   summary="Device profiles (builtin, edited in the admin, or measured by a calibration job)")
    def get(self, request):
        return Response(DeviceProfileOutputSerializer(costs.device_profile_list(), many=True).data)


class RunEstimateInputSerializer(serializers.Serializer):
    bits = serializers.JSONField(required=False, help_text='{"default": [w, a], "layers": {"name or glob": [w, a]}}')
    profile = serializers.CharField(max_length=100, default=engine_profiles.DEFAULT_PROFILE)
    batch_size = serializers.IntegerField(default=1, min_value=1, max_value=costs.MAX_BATCH)


class RunCostApi(APIView):
    @extend_schema(operation_id="cost_run_report", responses={200: RunCostOutputSerializer},
                   summary="A run's latest cost report, its sensitivity grid, and the profiles to re-time it with")
    def get(self, request, run_id: int):
        run = get_object_or_404(Run, pk=run_id, owner=request.user)
        return Response({
            "run": run.pk, "report": costs.cost_report_latest(run=run), "history": costs.cost_report_history(run=run),
            "sensitivity": costs.sensitivity_get(run=run),
            "profiles": DeviceProfileOutputSerializer(costs.device_profile_list(), many=True).data})

    @extend_schema(operation_id="cost_run_estimate", request=RunEstimateInputSerializer,
                   responses={201: CostReportSerializer},
                   summary="Estimate the run's newest checkpoint (or its config's model) and attach the report")
    def post(self, request, run_id: int):
        run = get_object_or_404(Run, pk=run_id, owner=request.user)
        data = RunEstimateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        artifact = costs.cost_estimate_run(run=run, **data.validated_data)
        return Response(costs.cost_report_latest(run=run) or {}, status=201,
                        headers={"Location": f"/api/cost/runs/{run.pk}/", "X-Artifact": artifact.path})
