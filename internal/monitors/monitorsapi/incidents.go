package monitorsapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/monitors/incidents"
)

// Incidents and notification channels: HTTP <-> incidents.Service.

// IncidentIDPath names an incident in the path.
type IncidentIDPath struct {
	ID int64 `path:"id" minimum:"1" doc:"Incident id"`
}

// ListIncidentsInput asks for a page of the caller's incidents.
type ListIncidentsInput struct {
	PageQuery
	State     string `query:"state" enum:"open,acknowledged,resolved,active" doc:"Only incidents in this state; active is open or acknowledged"`
	MonitorID int64  `query:"monitor_id" minimum:"0" doc:"Only this monitor's incidents"`
	Limit     int    `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

// IncidentPageOutput is a page of incidents.
type IncidentPageOutput struct {
	Body incidents.IncidentPage
}

// IncidentOutput is one incident.
type IncidentOutput struct {
	Body incidents.Incident
}

// IncidentDetailOutput is one incident with its timeline.
type IncidentDetailOutput struct {
	Body incidents.Detail
}

// ChannelBody is a channel to create.
type ChannelBody struct {
	Kind    string `json:"kind" enum:"webhook,email" doc:"webhook: a signed JSON POST to url; email: a mail to address"`
	Name    string `json:"name" minLength:"1" maxLength:"100" example:"On-call"`
	URL     string `json:"url,omitempty" format:"uri" maxLength:"2048" doc:"The webhook's http(s) URL (webhook only)"`
	Address string `json:"address,omitempty" format:"email" maxLength:"254" doc:"The email address (email only)"`
}

// CreateChannelInput is a channel to create.
type CreateChannelInput struct {
	httpapi.IdempotencyHeader
	Body ChannelBody
}

// CreateChannelOutput is the channel created, with a webhook's secret.
type CreateChannelOutput struct {
	Location string `header:"Location"`
	Body     incidents.NewChannel
}

// ChannelIDPath names a channel in the path.
type ChannelIDPath struct {
	ID int64 `path:"id" minimum:"1" doc:"Channel id"`
}

// ListChannelsInput asks for a page of the caller's channels.
type ListChannelsInput struct {
	PageQuery
	Limit int `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

// ChannelPageOutput is a page of channels.
type ChannelPageOutput struct {
	Body incidents.ChannelPage
}

// TestChannelOutput says a test notification was delivered.
type TestChannelOutput struct {
	Body struct {
		Delivered bool `json:"delivered"`
	}
}

// StatusPage is a published monitor's status page with its incidents.
type StatusPage struct {
	monitors.Status
	Incidents []incidents.PublicIncident `json:"incidents" doc:"Incidents not resolved, and those resolved in the last 14 days, newest first"`
}

func registerIncidents(v1 huma.API, h handlers) {
	tags := []string{"Incidents"}
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "list-incidents", Method: http.MethodGet, Path: "/incidents",
		Summary: "List incidents", Tags: tags,
		Description: "Your incidents, newest first, filtered by `state` and `monitor_id`, paginated by `cursor`.",
	}), h.listIncidents)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "get-incident", Method: http.MethodGet, Path: "/incidents/{id}",
		Summary: "Get an incident", Tags: tags,
		Description: "One of your incidents with its timeline (detected, confirmed, opened, notified, acknowledged, " +
			"resolved) and the workflow that confirmed it. Another user's incident answers 404.",
	}), h.getIncident)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "acknowledge-incident", Method: http.MethodPost, Path: "/incidents/{id}/acknowledge",
		Summary: "Acknowledge an incident", Tags: tags,
		Description: "Says someone is on it. Acknowledging twice changes nothing; a resolved incident answers 409.",
	}), h.acknowledge)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "resolve-incident", Method: http.MethodPost, Path: "/incidents/{id}/resolve",
		Summary: "Resolve an incident", Tags: tags,
		Description: "Resolves it by hand and notifies your channels; a resolved incident answers 409. " +
			"A monitor that recovers resolves its incident by itself.",
	}), h.resolve)

	ctags := []string{"Notification channels"}
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "list-channels", Method: http.MethodGet, Path: "/channels",
		Summary: "List notification channels", Tags: ctags,
		Description: "Where you are notified of incidents, by id, paginated by `cursor`. Secrets are never shown again.",
	}), h.listChannels)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "create-channel", Method: http.MethodPost, Path: "/channels",
		Summary: "Create a notification channel", Tags: ctags, DefaultStatus: http.StatusCreated,
		Description: "A webhook (signed JSON POST; its `secret` is in this answer only) or an email address. " +
			"Webhook URLs are reached under the same network policy as checks. At most 20 channels (409 beyond).",
	}), h.createChannel)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "delete-channel", Method: http.MethodDelete, Path: "/channels/{id}",
		Summary: "Delete a notification channel", Tags: ctags, DefaultStatus: http.StatusNoContent,
		Description: "Deletes one of your channels; notifications not yet sent to it are skipped.",
	}), h.deleteChannel)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "test-channel", Method: http.MethodPost, Path: "/channels/{id}/test",
		Summary: "Send a test notification", Tags: ctags,
		Description: "Sends a test notification now and answers 200 when it was delivered, else 503 saying why.",
	}), h.testChannel)
}

func (h handlers) listIncidents(ctx context.Context, in *ListIncidentsInput) (*IncidentPageOutput, error) {
	p, err := h.inc.List(ctx, owner(ctx), incidents.Query{State: in.State, MonitorID: in.MonitorID, Request: in.request(in.Limit)})
	if err != nil {
		return nil, h.problem(ctx, httpapi.QueryField(err))
	}
	return &IncidentPageOutput{Body: p}, nil
}

func (h handlers) getIncident(ctx context.Context, in *IncidentIDPath) (*IncidentDetailOutput, error) {
	d, err := h.inc.Get(ctx, owner(ctx), in.ID)
	if err != nil {
		return nil, h.problem(ctx, err)
	}
	return &IncidentDetailOutput{Body: d}, nil
}

func (h handlers) acknowledge(ctx context.Context, in *IncidentIDPath) (*IncidentOutput, error) {
	i, err := h.inc.Acknowledge(ctx, owner(ctx), owner(ctx), in.ID)
	if err != nil {
		return nil, h.problem(ctx, err)
	}
	return &IncidentOutput{Body: i}, nil
}

func (h handlers) resolve(ctx context.Context, in *IncidentIDPath) (*IncidentOutput, error) {
	i, err := h.inc.Resolve(ctx, owner(ctx), owner(ctx), in.ID)
	if err != nil {
		return nil, h.problem(ctx, err)
	}
	return &IncidentOutput{Body: i}, nil
}

func (h handlers) listChannels(ctx context.Context, in *ListChannelsInput) (*ChannelPageOutput, error) {
	p, err := h.inc.Channels(ctx, owner(ctx), in.request(in.Limit))
	if err != nil {
		return nil, h.problem(ctx, httpapi.QueryField(err))
	}
	return &ChannelPageOutput{Body: p}, nil
}

func (h handlers) createChannel(ctx context.Context, in *CreateChannelInput) (*CreateChannelOutput, error) {
	spec := incidents.ChannelSpec{Kind: in.Body.Kind, Name: in.Body.Name, URL: in.Body.URL, Address: in.Body.Address}
	c, _, err := httpapi.Idempotent(ctx, h.d, in.IdempotencyKey, "create-channel", in.Body,
		func(ctx context.Context) (incidents.NewChannel, error) {
			return h.inc.CreateChannel(ctx, owner(ctx), spec)
		})
	if err != nil {
		return nil, h.problem(ctx, httpapi.BodyField(err))
	}
	return &CreateChannelOutput{Location: "/v1/channels/" + strconv.FormatInt(c.ID, 10), Body: c}, nil
}

func (h handlers) deleteChannel(ctx context.Context, in *ChannelIDPath) (*struct{}, error) {
	if err := h.inc.DeleteChannel(ctx, owner(ctx), in.ID); err != nil {
		return nil, h.problem(ctx, err)
	}
	return nil, nil
}

func (h handlers) testChannel(ctx context.Context, in *ChannelIDPath) (*TestChannelOutput, error) {
	if err := h.inc.TestChannel(ctx, owner(ctx), in.ID); err != nil {
		return nil, h.problem(ctx, err)
	}
	out := &TestChannelOutput{}
	out.Body.Delivered = true
	return out, nil
}
