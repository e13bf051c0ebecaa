/// The admin API as an OpenAPI 3.0 document, served at `/openapi.json` (a test checks every route against it).
enum OpenAPIDocument {
    static let json: String = #"""
{
  "openapi": "3.0.3",
  "info": {
    "title": "Agentry admin API",
    "version": "0.5.0",
    "description": "Admin API of `agentry worker` / `agentry admin` (default 127.0.0.1:8000). JSON bodies; timestamps ISO 8601 UTC with milliseconds; ids lower-case UUIDs. Every POST needs `Authorization: Bearer <AGENTRY_ADMIN_TOKEN>`. GETs are open on a loopback address; on any other address they need the bearer token. Request bodies over 1 MiB: 413."
  },
  "servers": [
    {
      "url": "http://127.0.0.1:8000"
    }
  ],
  "tags": [
    {
      "name": "service"
    },
    {
      "name": "agents"
    },
    {
      "name": "runtime"
    },
    {
      "name": "events"
    },
    {
      "name": "runs"
    },
    {
      "name": "locks"
    },
    {
      "name": "dead"
    }
  ],
  "paths": {
    "/": {
      "get": {
        "operationId": "getStatusPage",
        "summary": "The status page",
        "tags": [
          "service"
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "The status page.",
            "content": {
              "text/html": {
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/healthz": {
      "get": {
        "operationId": "getHealth",
        "summary": "Liveness",
        "tags": [
          "service"
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "The process is alive.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "status": {
                      "type": "string",
                      "enum": [
                        "ok"
                      ]
                    }
                  },
                  "required": [
                    "status"
                  ]
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/readyz": {
      "get": {
        "operationId": "getReadiness",
        "summary": "Readiness",
        "tags": [
          "service"
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "Ready.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "status": {
                      "type": "string",
                      "enum": [
                        "ready"
                      ]
                    },
                    "checks": {
                      "type": "object",
                      "additionalProperties": {
                        "type": "string"
                      },
                      "description": "`broker`, `database`, `migrations`: `ok`, or why not."
                    }
                  },
                  "required": [
                    "status",
                    "checks"
                  ]
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Not ready; the failing checks say why.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "status": {
                      "type": "string",
                      "enum": [
                        "not_ready"
                      ]
                    },
                    "checks": {
                      "type": "object",
                      "additionalProperties": {
                        "type": "string"
                      },
                      "description": "`broker`, `database`, `migrations`: `ok`, or why not."
                    }
                  },
                  "required": [
                    "status",
                    "checks"
                  ]
                }
              }
            }
          }
        }
      }
    },
    "/metrics": {
      "get": {
        "operationId": "getMetrics",
        "summary": "Prometheus metrics",
        "tags": [
          "service"
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "Prometheus text exposition format.",
            "content": {
              "text/plain": {
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/openapi.json": {
      "get": {
        "operationId": "getOpenAPI",
        "summary": "This API as OpenAPI 3.0",
        "tags": [
          "service"
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "This document.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "additionalProperties": true
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/agents/register": {
      "post": {
        "operationId": "registerAgent",
        "summary": "Register an agent definition (as a draft)",
        "description": "409 when that version already exists with other content.",
        "tags": [
          "agents"
        ],
        "requestBody": {
          "required": true,
          "description": "The agent definition, as YAML or JSON.",
          "content": {
            "application/yaml": {
              "schema": {
                "type": "string"
              }
            },
            "text/yaml": {
              "schema": {
                "type": "string"
              }
            },
            "application/json": {
              "schema": {
                "type": "object",
                "additionalProperties": true,
                "description": "The definition as JSON, snake_case keys as in the YAML."
              }
            }
          }
        },
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "201": {
            "description": "Registered (or the same content was already registered).",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "agent_id": {
                      "type": "string"
                    },
                    "version": {
                      "type": "string"
                    },
                    "status": {
                      "type": "string",
                      "enum": [
                        "draft"
                      ]
                    },
                    "message": {
                      "type": "string",
                      "example": "Agent registered successfully"
                    }
                  },
                  "required": [
                    "agent_id",
                    "version",
                    "status",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "409": {
            "description": "Conflict (`conflict`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "415": {
            "description": "Unsupported Content-Type (`unsupported_media_type`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "422": {
            "description": "Invalid agent definition (`invalid_agent`), with `problems`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/agents/": {
      "get": {
        "operationId": "listAgents",
        "summary": "List agents",
        "tags": [
          "agents"
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "agents": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Agent"
                      }
                    },
                    "count": {
                      "type": "integer",
                      "minimum": 0
                    }
                  },
                  "required": [
                    "agents",
                    "count"
                  ]
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/agents": {
      "get": {
        "operationId": "listAgentsNoSlash",
        "summary": "List agents (same as `/api/agents/`)",
        "tags": [
          "agents"
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "agents": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Agent"
                      }
                    },
                    "count": {
                      "type": "integer",
                      "minimum": 0
                    }
                  },
                  "required": [
                    "agents",
                    "count"
                  ]
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/agents/{agent_id}": {
      "get": {
        "operationId": "getAgent",
        "summary": "One version of an agent with its definition",
        "tags": [
          "agents"
        ],
        "parameters": [
          {
            "name": "agent_id",
            "in": "path",
            "required": true,
            "description": "Agent id.",
            "schema": {
              "type": "string"
            }
          },
          {
            "name": "version",
            "in": "query",
            "required": false,
            "description": "Version to show (default: the published one, else the latest).",
            "schema": {
              "type": "string",
              "example": "1.2.0"
            }
          }
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/AgentDetail"
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found (`not_found`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/agents/{agent_id}/publish": {
      "post": {
        "operationId": "publishAgent",
        "summary": "Publish a version of an agent",
        "tags": [
          "agents"
        ],
        "parameters": [
          {
            "name": "agent_id",
            "in": "path",
            "required": true,
            "description": "Agent id.",
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "type": "object",
                "properties": {
                  "version": {
                    "type": "string",
                    "example": "1.2.0",
                    "description": "Version to publish (default: the latest)."
                  }
                }
              }
            }
          }
        },
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "agent_id": {
                      "type": "string"
                    },
                    "version": {
                      "type": "string"
                    },
                    "message": {
                      "type": "string",
                      "example": "Agent published"
                    }
                  },
                  "required": [
                    "agent_id",
                    "version",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found (`not_found`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "415": {
            "description": "Unsupported Content-Type (`unsupported_media_type`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/agents/{agent_id}/pause": {
      "post": {
        "operationId": "pauseAgent",
        "summary": "Pause an agent",
        "tags": [
          "agents"
        ],
        "parameters": [
          {
            "name": "agent_id",
            "in": "path",
            "required": true,
            "description": "Agent id.",
            "schema": {
              "type": "string"
            }
          }
        ],
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "agent_id": {
                      "type": "string"
                    },
                    "desired_state": {
                      "type": "string",
                      "enum": [
                        "paused"
                      ]
                    },
                    "message": {
                      "type": "string"
                    }
                  },
                  "required": [
                    "agent_id",
                    "desired_state",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found (`not_found`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/agents/{agent_id}/resume": {
      "post": {
        "operationId": "resumeAgent",
        "summary": "Resume a paused agent",
        "tags": [
          "agents"
        ],
        "parameters": [
          {
            "name": "agent_id",
            "in": "path",
            "required": true,
            "description": "Agent id.",
            "schema": {
              "type": "string"
            }
          }
        ],
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "agent_id": {
                      "type": "string"
                    },
                    "desired_state": {
                      "type": "string",
                      "enum": [
                        "running"
                      ]
                    },
                    "message": {
                      "type": "string"
                    }
                  },
                  "required": [
                    "agent_id",
                    "desired_state",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found (`not_found`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/agents/{agent_id}/stop": {
      "post": {
        "operationId": "stopAgent",
        "summary": "Stop an agent",
        "tags": [
          "agents"
        ],
        "parameters": [
          {
            "name": "agent_id",
            "in": "path",
            "required": true,
            "description": "Agent id.",
            "schema": {
              "type": "string"
            }
          }
        ],
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "agent_id": {
                      "type": "string"
                    },
                    "desired_state": {
                      "type": "string",
                      "enum": [
                        "stopped"
                      ]
                    },
                    "message": {
                      "type": "string"
                    }
                  },
                  "required": [
                    "agent_id",
                    "desired_state",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found (`not_found`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/agents/{agent_id}/start": {
      "post": {
        "operationId": "startAgent",
        "summary": "Start an agent",
        "tags": [
          "agents"
        ],
        "parameters": [
          {
            "name": "agent_id",
            "in": "path",
            "required": true,
            "description": "Agent id.",
            "schema": {
              "type": "string"
            }
          }
        ],
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "agent_id": {
                      "type": "string"
                    },
                    "desired_state": {
                      "type": "string",
                      "enum": [
                        "running"
                      ]
                    },
                    "message": {
                      "type": "string"
                    }
                  },
                  "required": [
                    "agent_id",
                    "desired_state",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found (`not_found`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/runtime/instances": {
      "get": {
        "operationId": "listInstances",
        "summary": "List agent instances",
        "tags": [
          "runtime"
        ],
        "parameters": [
          {
            "name": "agent_id",
            "in": "query",
            "required": false,
            "description": "Only instances of this agent.",
            "schema": {
              "type": "string"
            }
          }
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "instances": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Instance"
                      }
                    }
                  },
                  "required": [
                    "instances"
                  ]
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/runtime/instances/{instance_id}": {
      "get": {
        "operationId": "getInstance",
        "summary": "One agent instance",
        "tags": [
          "runtime"
        ],
        "parameters": [
          {
            "name": "instance_id",
            "in": "path",
            "required": true,
            "description": "Instance id.",
            "schema": {
              "type": "string",
              "format": "uuid"
            }
          }
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Instance"
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found (`not_found`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/runtime/instances/start": {
      "post": {
        "operationId": "startInstance",
        "summary": "Start an agent (on every worker)",
        "tags": [
          "runtime"
        ],
        "parameters": [
          {
            "name": "agent_id",
            "in": "query",
            "required": false,
            "description": "Agent to start (or in the body).",
            "schema": {
              "type": "string"
            }
          },
          {
            "name": "version",
            "in": "query",
            "required": false,
            "description": "Version to start (or in the body).",
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "type": "object",
                "properties": {
                  "agent_id": {
                    "type": "string"
                  },
                  "version": {
                    "type": "string"
                  }
                }
              }
            }
          },
          "description": "Alternative to the query parameters."
        },
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "202": {
            "description": "Accepted.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "agent_id": {
                      "type": "string"
                    },
                    "instance_id": {
                      "type": "string",
                      "format": "uuid",
                      "nullable": true
                    },
                    "message": {
                      "type": "string",
                      "example": "Agent started"
                    }
                  },
                  "required": [
                    "agent_id",
                    "instance_id",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found (`not_found`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "415": {
            "description": "Unsupported Content-Type (`unsupported_media_type`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/runtime/instances/{instance_id}/stop": {
      "post": {
        "operationId": "stopInstance",
        "summary": "Stop the instance's agent (on every worker)",
        "tags": [
          "runtime"
        ],
        "parameters": [
          {
            "name": "instance_id",
            "in": "path",
            "required": true,
            "description": "Instance id.",
            "schema": {
              "type": "string",
              "format": "uuid"
            }
          }
        ],
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "agent_id": {
                      "type": "string"
                    },
                    "instance_id": {
                      "type": "string",
                      "format": "uuid"
                    },
                    "message": {
                      "type": "string",
                      "example": "Agent stopped"
                    }
                  },
                  "required": [
                    "agent_id",
                    "instance_id",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found (`not_found`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/runtime/instances/status": {
      "get": {
        "operationId": "instanceStatusStream",
        "summary": "Live status (WebSocket)",
        "description": "WebSocket. Text frames, one JSON object each.\n\n- On connect: `{\"type\": \"snapshot\", \"instances\": [Instance], \"agents\": [Agent], \"queues\": [Queue], \"locks\": [Lock], \"runs\": [Run] (20 most recent), \"events\": [Event] (20 most recent, newest first)}`.\n- Then, as things change (at most 10 per second per kind), full lists replacing the previous ones: `{\"type\": \"instances\", \"instances\": [Instance]}`, `{\"type\": \"agents\", \"agents\": [Agent]}`, `{\"type\": \"locks\", \"locks\": [Lock]}`, `{\"type\": \"runs\", \"runs\": [Run]}`, `{\"type\": \"queues\", \"queues\": [Queue]}`.\n- `{\"type\": \"event\", \"event\": Event}` for each `agent.*`, `resource.*` and `alert.*` event as it is published.\n\nWithout the upgrade headers: 400.",
        "tags": [
          "runtime"
        ],
        "parameters": [
          {
            "name": "Upgrade",
            "in": "header",
            "required": true,
            "schema": {
              "type": "string",
              "enum": [
                "websocket"
              ]
            }
          },
          {
            "name": "Connection",
            "in": "header",
            "required": true,
            "schema": {
              "type": "string",
              "example": "Upgrade"
            }
          },
          {
            "name": "Sec-WebSocket-Key",
            "in": "header",
            "required": true,
            "schema": {
              "type": "string"
            }
          },
          {
            "name": "Sec-WebSocket-Version",
            "in": "header",
            "required": true,
            "schema": {
              "type": "string",
              "enum": [
                "13"
              ]
            }
          }
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "101": {
            "description": "Switching Protocols: WebSocket upgrade."
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/events/alerts/blackscreen": {
      "post": {
        "operationId": "publishBlackscreenAlert",
        "summary": "Publish an `alert.blackscreen` event",
        "tags": [
          "events"
        ],
        "parameters": [
          {
            "name": "device_id",
            "in": "query",
            "required": false,
            "description": "Device (or in the body).",
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "type": "object",
                "properties": {
                  "device_id": {
                    "type": "string"
                  }
                },
                "required": [
                  "device_id"
                ]
              }
            }
          },
          "description": "Alternative to the query parameter."
        },
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "202": {
            "description": "Published (event `alert.blackscreen`, CRITICAL, payload `{\"device_id\", \"severity\": \"critical\"}`).",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "event_id": {
                      "type": "string",
                      "format": "uuid"
                    },
                    "message": {
                      "type": "string",
                      "example": "Alert published"
                    }
                  },
                  "required": [
                    "event_id",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "415": {
            "description": "Unsupported Content-Type (`unsupported_media_type`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/events/alerts/device-offline": {
      "post": {
        "operationId": "publishDeviceOfflineAlert",
        "summary": "Publish an `alert.device_offline` event",
        "tags": [
          "events"
        ],
        "parameters": [
          {
            "name": "device_id",
            "in": "query",
            "required": false,
            "description": "Device (or in the body).",
            "schema": {
              "type": "string"
            }
          },
          {
            "name": "duration",
            "in": "query",
            "required": false,
            "description": "Seconds offline (or in the body).",
            "schema": {
              "type": "integer",
              "minimum": 0
            }
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "type": "object",
                "properties": {
                  "device_id": {
                    "type": "string"
                  },
                  "duration": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Seconds offline."
                  }
                },
                "required": [
                  "device_id"
                ]
              }
            }
          },
          "description": "Alternative to the query parameters."
        },
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "202": {
            "description": "Published (event `alert.device_offline`, HIGH, payload `{\"device_id\", \"duration_seconds\", \"severity\": \"high\"}`).",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "event_id": {
                      "type": "string",
                      "format": "uuid"
                    },
                    "message": {
                      "type": "string",
                      "example": "Alert published"
                    }
                  },
                  "required": [
                    "event_id",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "415": {
            "description": "Unsupported Content-Type (`unsupported_media_type`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/events": {
      "post": {
        "operationId": "publishEvent",
        "summary": "Publish an event",
        "tags": [
          "events"
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "type": "object",
                "properties": {
                  "type": {
                    "type": "string",
                    "example": "alert.blackscreen"
                  },
                  "payload": {
                    "type": "object",
                    "additionalProperties": true
                  },
                  "priority": {
                    "type": "string",
                    "description": "Any case; default `normal`.",
                    "default": "normal",
                    "example": "normal"
                  },
                  "source": {
                    "type": "string"
                  },
                  "correlation_id": {
                    "type": "string"
                  }
                },
                "required": [
                  "type"
                ]
              }
            }
          }
        },
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "202": {
            "description": "Published.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "event_id": {
                      "type": "string",
                      "format": "uuid"
                    },
                    "type": {
                      "type": "string"
                    },
                    "priority": {
                      "type": "string",
                      "enum": [
                        "CRITICAL",
                        "HIGH",
                        "NORMAL",
                        "LOW"
                      ],
                      "description": "Priority (upper case in answers; any case accepted in requests)."
                    },
                    "message": {
                      "type": "string",
                      "example": "Event published"
                    }
                  },
                  "required": [
                    "event_id",
                    "type",
                    "priority",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "415": {
            "description": "Unsupported Content-Type (`unsupported_media_type`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/runs": {
      "get": {
        "operationId": "listRuns",
        "summary": "Recent runs, newest first",
        "tags": [
          "runs"
        ],
        "parameters": [
          {
            "name": "agent_id",
            "in": "query",
            "required": false,
            "description": "Only runs of this agent.",
            "schema": {
              "type": "string"
            }
          },
          {
            "name": "event_id",
            "in": "query",
            "required": false,
            "description": "Only runs for this event.",
            "schema": {
              "type": "string",
              "format": "uuid"
            }
          },
          {
            "name": "state",
            "in": "query",
            "required": false,
            "description": "Only runs in this state.",
            "schema": {
              "type": "string",
              "enum": [
                "running",
                "succeeded",
                "failed",
                "timed_out",
                "skipped",
                "cancelled",
                "lost"
              ]
            }
          },
          {
            "name": "limit",
            "in": "query",
            "required": false,
            "description": "At most this many.",
            "schema": {
              "type": "integer",
              "minimum": 1,
              "default": 50
            }
          }
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "runs": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Run"
                      }
                    },
                    "count": {
                      "type": "integer",
                      "minimum": 0
                    }
                  },
                  "required": [
                    "runs",
                    "count"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/runs/{run_id}": {
      "get": {
        "operationId": "getRun",
        "summary": "One run",
        "tags": [
          "runs"
        ],
        "parameters": [
          {
            "name": "run_id",
            "in": "path",
            "required": true,
            "description": "Run id.",
            "schema": {
              "type": "string",
              "format": "uuid"
            }
          }
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Run"
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found (`not_found`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/runs/{run_id}/cancel": {
      "post": {
        "operationId": "cancelRun",
        "summary": "Cancel a running run or its pending retry",
        "description": "404 when the run does not exist or is neither running nor waiting for a retry.",
        "tags": [
          "runs"
        ],
        "parameters": [
          {
            "name": "run_id",
            "in": "path",
            "required": true,
            "description": "Run id.",
            "schema": {
              "type": "string",
              "format": "uuid"
            }
          }
        ],
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "run_id": {
                      "type": "string",
                      "format": "uuid"
                    },
                    "message": {
                      "type": "string"
                    }
                  },
                  "required": [
                    "run_id",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found (`not_found`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/locks": {
      "get": {
        "operationId": "listLocks",
        "summary": "Resource locks",
        "tags": [
          "locks"
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "locks": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Lock"
                      }
                    },
                    "count": {
                      "type": "integer",
                      "minimum": 0
                    }
                  },
                  "required": [
                    "locks",
                    "count"
                  ]
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/locks/{resource}": {
      "get": {
        "operationId": "getLock",
        "summary": "One resource lock (status `available` when free)",
        "tags": [
          "locks"
        ],
        "parameters": [
          {
            "name": "resource",
            "in": "path",
            "required": true,
            "description": "Resource as `<type>:<id>`, e.g. `device:tv-1`.",
            "schema": {
              "type": "string",
              "example": "device:tv-1"
            }
          }
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Lock"
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/locks/{resource}/release": {
      "post": {
        "operationId": "releaseLock",
        "summary": "Force the release of a resource lock",
        "description": "404 when the resource is not locked.",
        "tags": [
          "locks"
        ],
        "parameters": [
          {
            "name": "resource",
            "in": "path",
            "required": true,
            "description": "Resource as `<type>:<id>`, e.g. `device:tv-1`.",
            "schema": {
              "type": "string",
              "example": "device:tv-1"
            }
          }
        ],
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "Released (forced).",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "resource": {
                      "type": "string"
                    },
                    "owner": {
                      "type": "string"
                    },
                    "owner_type": {
                      "type": "string"
                    },
                    "run_id": {
                      "type": "string",
                      "format": "uuid",
                      "nullable": true
                    },
                    "message": {
                      "type": "string"
                    }
                  },
                  "required": [
                    "resource",
                    "owner",
                    "owner_type",
                    "run_id",
                    "message"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found (`not_found`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/dead": {
      "get": {
        "operationId": "listParked",
        "summary": "Messages parked in `agentry.dead`",
        "tags": [
          "dead"
        ],
        "parameters": [
          {
            "name": "limit",
            "in": "query",
            "required": false,
            "description": "At most this many.",
            "schema": {
              "type": "integer",
              "minimum": 1,
              "default": 100
            }
          }
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "messages": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Parked"
                      }
                    },
                    "count": {
                      "type": "integer",
                      "minimum": 0
                    }
                  },
                  "required": [
                    "messages",
                    "count"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/dead/replay": {
      "post": {
        "operationId": "replayParked",
        "summary": "Replay parked messages",
        "tags": [
          "dead"
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "oneOf": [
                  {
                    "type": "object",
                    "properties": {
                      "ids": {
                        "type": "array",
                        "items": {
                          "type": "string"
                        }
                      }
                    },
                    "required": [
                      "ids"
                    ]
                  },
                  {
                    "type": "object",
                    "properties": {
                      "all": {
                        "type": "boolean",
                        "enum": [
                          true
                        ]
                      }
                    },
                    "required": [
                      "all"
                    ]
                  }
                ]
              }
            }
          },
          "description": "Either `{\"ids\": [...]}` or `{\"all\": true}`."
        },
        "security": [
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "replayed": {
                      "type": "integer",
                      "minimum": 0
                    },
                    "ids": {
                      "type": "array",
                      "items": {
                        "type": "string"
                      }
                    },
                    "refused": {
                      "type": "array",
                      "description": "Messages left parked: addressed elsewhere than agentry.events or an agent's queue, or truncated.",
                      "items": {
                        "type": "object",
                        "properties": {
                          "id": {
                            "type": "string"
                          },
                          "reason": {
                            "type": "string"
                          }
                        },
                        "required": [
                          "id",
                          "reason"
                        ]
                      }
                    }
                  },
                  "required": [
                    "replayed",
                    "ids",
                    "refused"
                  ]
                }
              }
            }
          },
          "400": {
            "description": "Bad request (`bad_request`): a malformed parameter or body.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "No token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Request body over 1 MiB (`payload_too_large`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "415": {
            "description": "Unsupported Content-Type (`unsupported_media_type`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/queues": {
      "get": {
        "operationId": "listQueues",
        "summary": "Agent queues on the broker",
        "tags": [
          "runtime"
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "queues": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Queue"
                      }
                    }
                  },
                  "required": [
                    "queues"
                  ]
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/workers": {
      "get": {
        "operationId": "listWorkers",
        "summary": "Workers",
        "tags": [
          "runtime"
        ],
        "security": [
          {},
          {
            "bearer": []
          }
        ],
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "workers": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Worker"
                      }
                    }
                  },
                  "required": [
                    "workers"
                  ]
                }
              }
            }
          },
          "401": {
            "description": "Only on a non-loopback address: missing or wrong token (`unauthorized`); answered with `WWW-Authenticate: Bearer`.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "headers": {
              "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "403": {
            "description": "Only on a non-loopback address: no token configured on the server (`forbidden`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "500": {
            "description": "Internal error (`internal`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Broker or database unavailable (`unavailable`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "`AGENTRY_ADMIN_TOKEN`, or the token the server made at start and printed with the status page URL"
      }
    },
    "schemas": {
      "Agent": {
        "type": "object",
        "properties": {
          "agent_id": {
            "type": "string"
          },
          "name": {
            "type": "string"
          },
          "description": {
            "type": "string",
            "nullable": true
          },
          "latest_version": {
            "type": "string"
          },
          "published_version": {
            "type": "string",
            "nullable": true
          },
          "desired_state": {
            "type": "string",
            "enum": [
              "running",
              "paused",
              "stopped"
            ]
          },
          "retired": {
            "type": "boolean"
          },
          "versions": {
            "type": "array",
            "items": {
              "type": "string"
            },
            "description": "Registered versions, e.g. `1.0.0`."
          },
          "triggers": {
            "type": "array",
            "items": {
              "type": "string"
            },
            "description": "Event types the agent listens to, e.g. `alert.blackscreen`."
          }
        },
        "required": [
          "agent_id",
          "name",
          "latest_version",
          "published_version",
          "desired_state",
          "retired",
          "versions",
          "triggers"
        ],
        "description": "An agent (summary)."
      },
      "AgentDetail": {
        "type": "object",
        "properties": {
          "agent_id": {
            "type": "string"
          },
          "version": {
            "type": "string"
          },
          "status": {
            "type": "string",
            "enum": [
              "draft",
              "published",
              "retired"
            ]
          },
          "definition": {
            "type": "object",
            "additionalProperties": true,
            "description": "The definition as JSON, snake_case keys as in the YAML."
          },
          "yaml": {
            "type": "string",
            "description": "The definition as YAML."
          },
          "secrets_redacted": {
            "type": "boolean",
            "description": "True when the caller has no token and values of exec.env, http.headers or a password in http.url read <redacted>."
          }
        },
        "required": [
          "agent_id",
          "version",
          "status",
          "definition",
          "yaml",
          "secrets_redacted"
        ],
        "description": "One version of an agent with its definition."
      },
      "Error": {
        "type": "object",
        "properties": {
          "error": {
            "type": "object",
            "properties": {
              "code": {
                "type": "string",
                "enum": [
                  "bad_request",
                  "unauthorized",
                  "forbidden",
                  "not_found",
                  "conflict",
                  "payload_too_large",
                  "unsupported_media_type",
                  "invalid_agent",
                  "internal",
                  "unavailable"
                ]
              },
              "message": {
                "type": "string",
                "description": "What is wrong, naming the field."
              },
              "problems": {
                "type": "array",
                "items": {
                  "$ref": "#/components/schemas/ValidationProblem"
                },
                "description": "Only with `invalid_agent` (422): every problem found in the definition."
              }
            },
            "required": [
              "code",
              "message"
            ]
          }
        },
        "required": [
          "error"
        ],
        "description": "Every error answer."
      },
      "Event": {
        "type": "object",
        "properties": {
          "id": {
            "type": "string",
            "format": "uuid"
          },
          "type": {
            "type": "string",
            "example": "alert.blackscreen"
          },
          "priority": {
            "type": "string",
            "enum": [
              "CRITICAL",
              "HIGH",
              "NORMAL",
              "LOW"
            ],
            "description": "Priority (upper case in answers; any case accepted in requests)."
          },
          "timestamp": {
            "type": "string",
            "format": "date-time"
          },
          "source": {
            "type": "string",
            "nullable": true
          },
          "correlation_id": {
            "type": "string",
            "nullable": true
          },
          "causation_id": {
            "type": "string",
            "nullable": true
          },
          "payload": {
            "type": "object",
            "additionalProperties": true
          }
        },
        "required": [
          "id",
          "type",
          "priority",
          "timestamp",
          "payload"
        ],
        "description": "An event envelope."
      },
      "Instance": {
        "type": "object",
        "properties": {
          "instance_id": {
            "type": "string",
            "format": "uuid"
          },
          "agent_id": {
            "type": "string"
          },
          "version": {
            "type": "string"
          },
          "worker_id": {
            "type": "string"
          },
          "state": {
            "type": "string",
            "enum": [
              "idle",
              "running",
              "paused",
              "error",
              "stopped"
            ]
          },
          "current_task": {
            "type": "string",
            "format": "uuid",
            "description": "Id of the run in progress, if any.",
            "nullable": true
          },
          "running_tasks": {
            "type": "integer",
            "minimum": 0
          },
          "prefetch": {
            "type": "integer",
            "minimum": 1,
            "description": "Deliveries the instance takes at once: its share of the agent's max_parallel_tasks, which the instances taking its events divide (recounted with each heartbeat). Null unless it is idle or running.",
            "nullable": true
          },
          "started_at": {
            "type": "string",
            "format": "date-time"
          },
          "updated_at": {
            "type": "string",
            "format": "date-time"
          },
          "error": {
            "type": "string",
            "nullable": true
          }
        },
        "required": [
          "instance_id",
          "agent_id",
          "version",
          "worker_id",
          "state",
          "current_task",
          "running_tasks",
          "prefetch",
          "started_at",
          "updated_at",
          "error"
        ],
        "description": "An agent running on one worker (one instance per agent and worker)."
      },
      "Lock": {
        "type": "object",
        "properties": {
          "resource": {
            "type": "string",
            "example": "device:tv-1",
            "description": "`<type>:<id>`"
          },
          "resource_type": {
            "type": "string"
          },
          "resource_id": {
            "type": "string"
          },
          "status": {
            "type": "string",
            "enum": [
              "locked",
              "available"
            ]
          },
          "owner": {
            "type": "string",
            "nullable": true
          },
          "owner_type": {
            "type": "string",
            "nullable": true
          },
          "acquired_at": {
            "type": "string",
            "format": "date-time",
            "nullable": true
          },
          "expires_at": {
            "type": "string",
            "format": "date-time",
            "nullable": true
          },
          "priority": {
            "type": "string",
            "enum": [
              "CRITICAL",
              "HIGH",
              "NORMAL",
              "LOW"
            ],
            "description": "Priority (upper case in answers; any case accepted in requests).",
            "nullable": true
          },
          "fencing_token": {
            "type": "integer",
            "format": "int64",
            "nullable": true
          },
          "worker_id": {
            "type": "string",
            "nullable": true
          },
          "run_id": {
            "type": "string",
            "format": "uuid",
            "nullable": true
          },
          "queue_length": {
            "type": "integer",
            "minimum": 0
          },
          "waiters": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/LockWaiter"
            }
          }
        },
        "required": [
          "resource",
          "resource_type",
          "resource_id",
          "status",
          "owner",
          "queue_length",
          "waiters"
        ],
        "description": "A resource lock, its holder (when locked) and its waiters."
      },
      "LockWaiter": {
        "type": "object",
        "properties": {
          "position": {
            "type": "integer",
            "minimum": 1
          },
          "owner": {
            "type": "string"
          },
          "owner_type": {
            "type": "string"
          },
          "priority": {
            "type": "string",
            "enum": [
              "CRITICAL",
              "HIGH",
              "NORMAL",
              "LOW"
            ],
            "description": "Priority (upper case in answers; any case accepted in requests)."
          },
          "queued_at": {
            "type": "string",
            "format": "date-time"
          },
          "wait_until": {
            "type": "string",
            "format": "date-time"
          },
          "run_id": {
            "type": "string",
            "format": "uuid",
            "nullable": true
          }
        },
        "required": [
          "position",
          "owner",
          "owner_type",
          "priority",
          "queued_at",
          "wait_until",
          "run_id"
        ],
        "description": "One waiter for a resource lock."
      },
      "Parked": {
        "type": "object",
        "properties": {
          "id": {
            "type": "string"
          },
          "reason": {
            "type": "string"
          },
          "message": {
            "type": "string"
          },
          "queue": {
            "type": "string"
          },
          "parked_at": {
            "type": "string"
          },
          "original_exchange": {
            "type": "string"
          },
          "original_routing_key": {
            "type": "string"
          },
          "body_size": {
            "type": "integer",
            "minimum": 0
          },
          "preview": {
            "type": "string",
            "description": "The first bytes of the body, as text."
          }
        },
        "required": [
          "id",
          "reason",
          "message",
          "queue",
          "parked_at",
          "original_exchange",
          "original_routing_key",
          "body_size",
          "preview"
        ],
        "description": "A message parked in `agentry.dead`."
      },
      "Queue": {
        "type": "object",
        "properties": {
          "name": {
            "type": "string",
            "description": "`agentry.agent.<agent id>`"
          },
          "agent_id": {
            "type": "string"
          },
          "messages": {
            "type": "integer",
            "minimum": 0,
            "description": "Ready messages."
          },
          "consumers": {
            "type": "integer",
            "minimum": 0
          },
          "unacked": {
            "type": "integer",
            "nullable": true
          }
        },
        "required": [
          "name",
          "agent_id",
          "messages",
          "consumers",
          "unacked"
        ],
        "description": "An agent's queue on the broker."
      },
      "Run": {
        "type": "object",
        "properties": {
          "run_id": {
            "type": "string",
            "format": "uuid"
          },
          "agent_id": {
            "type": "string"
          },
          "agent_version": {
            "type": "string"
          },
          "event_id": {
            "type": "string",
            "format": "uuid"
          },
          "event_type": {
            "type": "string"
          },
          "priority": {
            "type": "string",
            "enum": [
              "CRITICAL",
              "HIGH",
              "NORMAL",
              "LOW"
            ],
            "description": "Priority (upper case in answers; any case accepted in requests)."
          },
          "attempt": {
            "type": "integer",
            "minimum": 1
          },
          "state": {
            "type": "string",
            "enum": [
              "running",
              "succeeded",
              "failed",
              "timed_out",
              "skipped",
              "cancelled",
              "lost"
            ]
          },
          "worker_id": {
            "type": "string",
            "nullable": true
          },
          "event_at": {
            "type": "string",
            "format": "date-time",
            "nullable": true
          },
          "received_at": {
            "description": "When the worker received the event's delivery from RabbitMQ: event_at to received_at is the wait in the broker, received_at to started_at the wait in the worker (agent slot, claim).",
            "type": "string",
            "format": "date-time",
            "nullable": true
          },
          "started_at": {
            "type": "string",
            "format": "date-time"
          },
          "finished_at": {
            "type": "string",
            "format": "date-time",
            "nullable": true
          },
          "result": {
            "description": "The handler's JSON result, if any.",
            "nullable": true
          },
          "output": {
            "type": "string",
            "nullable": true
          },
          "stderr": {
            "type": "string",
            "nullable": true
          },
          "exit_status": {
            "type": "integer",
            "nullable": true
          },
          "message": {
            "type": "string",
            "nullable": true
          },
          "retry_at": {
            "type": "string",
            "format": "date-time",
            "description": "When the next attempt is due, if one is.",
            "nullable": true
          }
        },
        "required": [
          "run_id",
          "agent_id",
          "agent_version",
          "event_id",
          "event_type",
          "priority",
          "attempt",
          "state",
          "started_at"
        ],
        "description": "One run of an agent's handler for one event."
      },
      "ValidationProblem": {
        "type": "object",
        "properties": {
          "path": {
            "type": "string",
            "description": "Where in the definition, e.g. `triggers[0].event`."
          },
          "line": {
            "type": "integer",
            "description": "1-based line in the submitted document, when known.",
            "nullable": true
          },
          "column": {
            "type": "integer",
            "description": "1-based column in the submitted document, when known.",
            "nullable": true
          },
          "message": {
            "type": "string"
          },
          "suggestion": {
            "type": "string",
            "description": "How to fix it, when there is a likely fix.",
            "nullable": true
          }
        },
        "required": [
          "path",
          "message"
        ],
        "description": "One problem found in an agent definition."
      },
      "Worker": {
        "type": "object",
        "properties": {
          "worker_id": {
            "type": "string"
          },
          "host": {
            "type": "string"
          },
          "pid": {
            "type": "integer"
          },
          "version": {
            "type": "string"
          },
          "status": {
            "type": "string"
          },
          "alive": {
            "type": "boolean"
          },
          "started_at": {
            "type": "string",
            "format": "date-time"
          },
          "heartbeat_at": {
            "type": "string",
            "format": "date-time"
          },
          "labels": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          }
        },
        "required": [
          "worker_id",
          "host",
          "pid",
          "version",
          "status",
          "alive",
          "started_at",
          "heartbeat_at",
          "labels"
        ],
        "description": "A worker process."
      }
    }
  }
}
"""#
}
