from __future__ import annotations

from django import template

from notes import selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def note_html(context, obj):
    """A log's or digest's HTML with [[links]] resolved for the current viewer."""
    return selectors.rendered_html(obj, context["request"].user)


@register.simple_tag(takes_context=True)
def backlinks_of(context, obj):
    request = context.get("request")
    if request is None or not request.user.is_authenticated or obj is None:
        return []
    return selectors.backlinks_for(obj, request.user)


@register.filter
def is_run(obj) -> bool:
    from experiments.models import Run

    return isinstance(obj, Run)
