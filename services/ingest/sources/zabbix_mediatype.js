// incident-lessons: Zabbix webhook media type script (Alerts -> Media types -> Create media type -> Type: Webhook).
//
// Zabbix runs this with `value` = the media type's parameters as a JSON object of strings (macros expanded).
// It posts them as one JSON object to the incident-lessons webhook receiver, with the bearer token in the
// Authorization header. The parameters are documented in tests/fixtures/zabbix/README.md; keep their names, the
// normaliser (services/ingest/sources/zabbix.py) reads them.
//
// Parameters that configure the transport and are not forwarded: endpoint, token, http_proxy.
// `event_tags` ({EVENT.TAGSJSON}) is forwarded as a JSON array; everything else as the string Zabbix expanded,
// including macros Zabbix could not resolve (for example {EVENT.RECOVERY.DATE} in a problem notification).

var TRANSPORT = ['endpoint', 'token', 'http_proxy'];

function validate(params) {
    if (typeof params.endpoint !== 'string' || !/^https?:\/\/.+/.test(params.endpoint)) {
        throw 'Parameter "endpoint" must be the http(s) URL of the incident-lessons zabbix webhook.';
    }
    if (typeof params.token !== 'string' || params.token.trim() === '' || params.token.indexOf('{') === 0) {
        throw 'Parameter "token" must hold the bearer token of the incident-lessons webhook receiver.';
    }
    if (typeof params.event_id !== 'string' || !/^[0-9]+$/.test(params.event_id)) {
        throw 'Parameter "event_id" must be {EVENT.ID}; got "' + params.event_id + '". '
            + 'Use this media type from a trigger action (Test does not expand macros).';
    }
}

function body(params) {
    var data = {};
    for (var name in params) {
        if (Object.prototype.hasOwnProperty.call(params, name) && TRANSPORT.indexOf(name) === -1) {
            data[name] = params[name];
        }
    }
    if (typeof data.event_tags === 'string') {
        try {
            data.event_tags = JSON.parse(data.event_tags);
        }
        catch (error) {
            Zabbix.log(4, '[ incident-lessons ] event_tags is not JSON, sent as text: ' + error);
        }
    }
    return JSON.stringify(data);
}

try {
    var params = JSON.parse(value);
    validate(params);

    var request = new HttpRequest();
    request.addHeader('Content-Type: application/json');
    request.addHeader('Authorization: Bearer ' + params.token);
    if (typeof params.http_proxy === 'string' && params.http_proxy.trim() !== '') {
        request.setProxy(params.http_proxy);
    }

    var payload = body(params);
    Zabbix.log(4, '[ incident-lessons ] POST ' + params.endpoint + ' event ' + params.event_id);
    var response = request.post(params.endpoint, payload);
    var status = request.getStatus();

    // The receiver answers 2xx only after the record is durably in Kafka; anything else must be retried by Zabbix.
    if (status < 200 || status >= 300) {
        throw 'incident-lessons webhook answered HTTP ' + status + ': ' + String(response).substring(0, 500);
    }
    return 'OK';
}
catch (error) {
    Zabbix.log(3, '[ incident-lessons ] notification failed: ' + error);
    throw 'incident-lessons notification failed: ' + error;
}
