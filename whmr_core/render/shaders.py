"""GLSL 3.30 sources of the renderer's two programs (scene geometry and background).

Every pass writes three targets: 0 colour (RGBA8), 1 face id (R32I), 2 geometry (RGBA32F: the
barycentric coordinates of the visible point in its triangle, and its camera-frame z in metres).
"""

SCENE_VERTEX = """
#version 330
uniform mat3 u_R;      // world -> camera rotation (identity when meshes are in the camera frame)
uniform vec3 u_t;      // world -> camera translation
uniform mat4 u_proj;   // camera frame -> clip space, w = z (PinholeCamera.gl_projection)
in vec3 in_pos;
in vec3 in_normal;
out vec3 v_cam;
out vec3 v_world;
out vec3 v_normal;
void main() {
    vec3 p = u_R * in_pos + u_t;
    v_cam = p;
    v_world = in_pos;
    v_normal = u_R * in_normal;
    gl_Position = u_proj * vec4(p, 1.0);
}
"""

# The geometry shader gives each corner a unit barycentric vector (GL 3.3 has no gl_BaryCoord) and
# the face normal for flat shading; perspective-correct interpolation then yields 3D barycentrics.
SCENE_GEOMETRY = """
#version 330
layout(triangles) in;
layout(triangle_strip, max_vertices = 3) out;
uniform bool u_flat;
in vec3 v_cam[];
in vec3 v_world[];
in vec3 v_normal[];
out vec3 g_cam;
out vec3 g_world;
out vec3 g_normal;
out vec3 g_bary;
flat out int g_prim;
void main() {
    vec3 fn = cross(v_cam[1] - v_cam[0], v_cam[2] - v_cam[0]);
    float len = length(fn);
    fn = len > 0.0 ? fn / len : vec3(0.0, 0.0, -1.0);
    for (int i = 0; i < 3; ++i) {
        gl_Position = gl_in[i].gl_Position;
        g_cam = v_cam[i];
        g_world = v_world[i];
        g_normal = u_flat ? fn : v_normal[i];
        g_bary = vec3(i == 0, i == 1, i == 2);
        g_prim = gl_PrimitiveIDIn;
        EmitVertex();
    }
    EndPrimitive();
}
"""

SCENE_FRAGMENT = """
#version 330
uniform vec3 u_color;
uniform int u_id_base;        // face id = u_id_base + primitive index; ignored for the ground
uniform bool u_ground;
uniform vec3 u_ground_origin;
uniform vec3 u_ground_e1;
uniform vec3 u_ground_e2;
uniform float u_ground_tile;
uniform vec3 u_ground_color2;
uniform vec3 u_light_dir[2];  // unit directions towards the lights, camera frame
uniform vec2 u_light_gain;
uniform float u_ambient;
uniform float u_specular;
in vec3 g_cam;
in vec3 g_world;
in vec3 g_normal;
in vec3 g_bary;
flat in int g_prim;
layout(location = 0) out vec4 f_color;
layout(location = 1) out int f_id;
layout(location = 2) out vec4 f_geom;
void main() {
    vec3 base = u_color;
    if (u_ground) {
        vec3 d = g_world - u_ground_origin;
        vec2 cell = floor(vec2(dot(d, u_ground_e1), dot(d, u_ground_e2)) / u_ground_tile);
        if (mod(cell.x + cell.y, 2.0) >= 1.0) base = u_ground_color2;
        f_id = -1;
    } else {
        f_id = u_id_base + g_prim;
    }
    vec3 view = normalize(-g_cam);
    vec3 n = normalize(g_normal);
    if (dot(n, view) < 0.0) n = -n;  // two-sided: open meshes and the ground's underside are lit too
    float diffuse = 0.0;
    float spec = 0.0;
    for (int i = 0; i < 2; ++i) {
        diffuse += u_light_gain[i] * max(dot(n, u_light_dir[i]), 0.0);
        vec3 h = normalize(u_light_dir[i] + view);
        spec += u_light_gain[i] * pow(max(dot(n, h), 0.0), 32.0);
    }
    vec3 rgb = base * (u_ambient + diffuse) + u_specular * spec;
    f_color = vec4(clamp(rgb, 0.0, 1.0), 1.0);
    f_geom = vec4(g_bary, g_cam.z);
}
"""

# One oversized triangle covering the viewport, drawn first without depth test: it sets every target
# of every pixel, so integer targets never depend on how glClear converts float clear values.
BACKGROUND_VERTEX = """
#version 330
void main() {
    vec2 p = vec2((gl_VertexID == 1) ? 3.0 : -1.0, (gl_VertexID == 2) ? 3.0 : -1.0);
    gl_Position = vec4(p, 1.0, 1.0);
}
"""

BACKGROUND_FRAGMENT = """
#version 330
uniform bool u_use_image;
uniform sampler2D u_image;    // uploaded top row first, so texel row = window row = image row
uniform vec3 u_color;
uniform float u_depth;
layout(location = 0) out vec4 f_color;
layout(location = 1) out int f_id;
layout(location = 2) out vec4 f_geom;
void main() {
    vec3 c = u_use_image ? texelFetch(u_image, ivec2(gl_FragCoord.xy), 0).rgb : u_color;
    f_color = vec4(c, 1.0);
    f_id = 0;
    f_geom = vec4(0.0, 0.0, 0.0, u_depth);
}
"""
